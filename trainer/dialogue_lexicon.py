"""Dialogue data shipped as JSON side files: the catalogue, the system reply templates and the
lexicon of the runtime's understanding (``runtime.dialogue_understanding``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ONTOLOGY = {
    "cuisine": ["italian", "chinese", "indian", "french", "thai", "japanese", "mexican", "british"],
    "area": ["north", "south", "east", "west", "centre"],
    "price": ["cheap", "moderate", "expensive"],
}
# booking hours (inclusive windows for the booked time) and party sizes restaurants take
HOURS = [["12:00", "14:30"], ["17:30", "21:30"]]
MAX_PEOPLE = (6, 8, 10)
SLOT_MINUTES = 15          # tables are booked on the quarter hour ("18:39" is a slip)

# restaurant names per cuisine and street names per area: data, kept in a JSON file beside
# this module
_DATA = json.loads(Path(__file__).with_name("dialogue_restaurants.json").read_text())
_NAMES: dict[str, list[str]] = _DATA["names"]
_STREETS: dict[str, list[str]] = _DATA["streets"]
_POSTCODE_DISTRICT = {"north": "CB4", "south": "CB2", "east": "CB5", "west": "CB3", "centre": "CB1"}


def make_catalogue(seed: int = 0, n: int = 80) -> dict:
    """Seeded catalogue of ``n`` restaurants: every (cuisine, area) pair gets ``n // 40`` of them
    (so each cuisine is served in every area), with a random price (cheap 40%, moderate 35%,
    expensive 25%; some (cuisine, area, price) combinations have no restaurant), a phone,
    address, postcode and the largest party it takes (6, 8 or 10)."""
    pairs = len(ONTOLOGY["cuisine"]) * len(ONTOLOGY["area"])
    per = n // pairs
    if n % pairs or not 1 <= per <= len(_NAMES["italian"]) // len(ONTOLOGY["area"]):
        raise ValueError(f"n must be {pairs} or {2 * pairs} (restaurants per cuisine and area: "
                         f"1 or 2), got {n}")
    rng = np.random.default_rng(seed)
    restaurants = []
    for c in ONTOLOGY["cuisine"]:
        names = [str(x) for x in rng.permutation(_NAMES[c])]
        for k, area in enumerate(np.repeat(ONTOLOGY["area"], per)):
            area = str(area)
            restaurants.append({
                "name": names[k], "cuisine": c, "area": area,
                "price": str(rng.choice(ONTOLOGY["price"], p=[0.4, 0.35, 0.25])),
                "phone": f"01223 {int(rng.integers(100000, 999999))}",
                "address": f"{int(rng.integers(1, 120))} {rng.choice(_STREETS[area])}",
                "postcode": f"{_POSTCODE_DISTRICT[area]} {int(rng.integers(1, 10))}"
                            f"{'ABDEFGHJLNPQRSTUWXYZ'[int(rng.integers(20))]}"
                            f"{'ABDEFGHJLNPQRSTUWXYZ'[int(rng.integers(20))]}",
                "max_people": int(rng.choice(MAX_PEOPLE)),
            })
    return {"ontology": ONTOLOGY, "hours": HOURS, "slot_minutes": SLOT_MINUTES,
            "restaurants": restaurants}


SYSTEM_TEMPLATES = {
    "greet": ["Hello! I can help you find a restaurant and book a table. What are you looking "
              "for?",
              "Hi, welcome to the restaurant booking service. What kind of restaurant would "
              "you like?"],
    "repeat": ["Sorry, I didn't catch that. Could you say it another way?",
               "Sorry, could you rephrase that?"],
    "request_cuisine": ["What kind of food would you like?",
                        "Which cuisine are you in the mood for?"],
    "request_area": ["Which part of town do you prefer?", "What area would you like to eat in?"],
    "request_price": ["What price range are you looking for?",
                      "Would you like something cheap, moderate or expensive?"],
    "request_people": ["How many people is the table for?", "For how many people?"],
    "request_time": ["What time would you like the table?", "At what time should I book?"],
    "confirm_cuisine": ["Did you say {value} food?", "Just to check, you would like {value} food?"],
    "confirm_area": ["Did you say the {value} of town?",
                     "Just to check, you want to eat in the {value}?"],
    "confirm_price": ["Did you say the {value} price range?",
                      "Just to check, you are looking for something {value}?"],
    "confirm_people": ["Did you say a table for {value}?",
                       "Just to check, that is {value} people?"],
    "confirm_time": ["Did you say the booking is at {value}?",
                     "Just to check, you would like the table at {value}?"],
    "offer": ["{name} serves {cuisine} food in the {area} and is in the {price} price range.",
              "How about {name}? It serves {cuisine} food in the {area}, {price} price range."],
    "nomatch": ["Sorry, there is no {constraints}.", "I'm sorry, I can't find a {constraints}."],
    "nomatch_other": ["Sorry, there is no other {constraints}.",
                      "I'm sorry, I have no other {constraints}."],
    "suggest_cuisine": ["There are {values} restaurants{where}.",
                        "I can offer {values} food{where} instead."],
    "suggest_area": ["There are some in the {values}.", "I can find one in the {values}."],
    "suggest_price": ["There are {values} ones.", "I can find a {values} one instead."],
    "book": ["Done: a table for {people} at {name} at {time}. Your reference is {ref}.",
             "I have booked {name} for {people} at {time}. The reference number is {ref}."],
    "change": ["I have changed your booking: {name} for {people} at {time}. The new reference "
               "is {ref}.",
               "Your booking is now for {people} at {name} at {time}. New reference {ref}."],
    "readback": ["A table for {people} at {time} at {name}, shall I book it?",
                 "So that is {name}, {people} people at {time}. Shall I book it?"],
    "readback_change": ["So I change your booking to {people} at {time} at {name}, is that "
                        "right?",
                        "Your booking would then be {name}, {people} people at {time}. Shall "
                        "I change it?"],
    "reject_people": ["Sorry, {name} can only take up to {value} people. Could you make it "
                      "fewer?",
                      "I'm afraid {name} only takes bookings for up to {value} people."],
    "reject_time": ["Sorry, {name} only takes bookings from {value}. Could you pick another "
                    "time?",
                    "I'm afraid {name} can't take a booking at {time}: bookings are from "
                    "{value}."],
    "inform": ["For {name}: {parts}.", "Here are the details of {name}: {parts}."],
    "inform_phone": ["the phone number is {phone}", "you can call them on {phone}"],
    "inform_address": ["the address is {address}", "it is at {address}"],
    "inform_postcode": ["the postcode is {postcode}", "postcode {postcode}"],
    "reqmore": ["Is there anything else I can help you with?", "Can I help with anything else?"],
    "reqmore_open": ["Could you tell me more about what you are looking for?",
                     "Any other preferences I should know about?"],
    "bye": ["Thank you, goodbye!", "Enjoy your meal. Goodbye!"],
}

# keyword lexicon of the runtime understanding; entries of the word lists are regex fragments
LEXICON = {
    "values": {
        "cuisine": {
            "italian": ["pizza", "pasta", "italy", "pizzeria", "trattoria"],
            "chinese": ["dim sum", "cantonese", "noodles", "china", "szechuan", "sichuan"],
            "indian": ["curry", "tandoori", "india", "biryani", "masala"],
            "french": ["bistro", "france", "brasserie"],
            "thai": ["pad thai", "thailand"],
            "japanese": ["sushi", "ramen", "japan", "sashimi"],
            "mexican": ["tacos", "taco", "burrito", "burritos", "mexico", "tex mex"],
            "british": ["english", "pub food", "fish and chips", "gastropub", "pub", "roast"],
        },
        "area": {
            "north": ["northern", "north side", "uptown", "northside"],
            "south": ["southern", "south side", "southside"],
            "east": ["eastern", "east side", "eastside"],
            "west": ["western", "west side", "westside"],
            "centre": ["center", "central", "city centre", "city center", "downtown",
                       "town centre", "middle of town", "centre of town", "center of town"],
        },
        "price": {
            "cheap": ["inexpensive", "budget", "affordable", "low cost", "cheaply", "cheapest",
                      "cheaper", "on a budget", "low priced", "low price"],
            "moderate": ["moderately priced", "moderately", "mid range", "midrange",
                         "mid priced", "mid price", "medium price", "medium priced",
                         "reasonably priced", "reasonable", "average price", "middle price",
                         "mid-range", "not too expensive but not cheap"],
            "expensive": ["pricey", "upscale", "fancy", "posh", "high end", "luxury",
                          "expensively", "splash out", "fine dining", "upmarket"],
        },
    },
    # values the catalogue does not serve: kept, and answered ("there is no ethiopian ...")
    "unknown": {
        "cuisine": ["ethiopian", "vegan", "vegetarian", "korean", "greek", "turkish", "spanish",
                    "lebanese", "vietnamese", "halal", "kosher", "seafood", "steakhouse",
                    "german", "portuguese", "brazilian", "caribbean", "moroccan", "persian",
                    "nepalese", "polish", "russian", "american", "burgers", "tapas", "african",
                    "peruvian", "indonesian", "malaysian", "gluten free"],
        "area": ["airport", "riverside", "station", "suburbs", "countryside", "harbour"],
        "price": [],
    },
    "dontcare_cuisine": [r"any (?:kind |type |sort )?of food", r"any food", r"any cuisine",
                         r"whatever food", r"(?:food|cuisine) does(?:n't| not) matter",
                         r"don't care about the (?:food|cuisine)", r"any kind of cuisine",
                         r"not fussy about (?:the )?(?:food|cuisine)", r"anything to eat"],
    "dontcare_area": [r"anywhere(?: in town| in the city)?", r"any area", r"any location",
                      r"any part of (?:town|the city)", r"wherever",
                      r"area does(?:n't| not) matter", r"location does(?:n't| not) matter",
                      r"don't care about the area", r"not fussy about (?:the )?(?:area|where)"],
    "dontcare_price": [r"any price(?: range)?", r"price does(?:n't| not) matter",
                       r"whatever price", r"don't care about the price", r"any budget",
                       r"money is no object", r"cost does(?:n't| not) matter",
                       r"not fussy about (?:the )?price"],
    "dontcare": [r"i don't mind", r"i dont mind", r"don't mind", r"does(?:n't| not) matter",
                 r"doesnt matter", r"don't care", r"dont care", r"no preference", r"whatever",
                 r"any is fine", r"anything(?! else| but)", r"either is fine", r"i'm easy",
                 r"any(?! other| else| more| but)", r"up to you", r"you choose", r"surprise me",
                 r"not fussy"],
    "request_phone": [r"phone", r"telephone", r"number(?! of)", r"call them", r"contact",
                      r"ring them"],
    "request_address": [r"address", r"where is it", r"where's it", r"located", r"whereabouts",
                        r"how do i get there", r"where is that", r"where's that", r"street"],
    "request_postcode": [r"postcode", r"post code", r"postal code", r"zip code", r"zip"],
    "reqalts": [r"anything else(?: is there| around)?", r"something else", r"what else",
                r"another one", r"another (?:restaurant|place|option)", r"any other(?:s| one|"
                r" options| places| restaurants)?", r"other options?", r"other (?:one|ones)",
                r"alternatives?", r"different (?:one|place|restaurant)", r"not that one",
                r"next one", r"somewhere else", r"elsewhere", r"else is there", r"others",
                r"other suggestions?", r"don't like (?:that|it|this) one", r"not keen on (?:that|"
                r"it)", r"another suggestion"],
    "nobook": [r"no need to book", r"(?:don't|dont|do not) need (?:to book|a booking|a table|a "
               r"reservation)", r"no booking", r"(?:don't|dont|do not) book", r"not (?:to )?book",
               r"without (?:a )?booking", r"no need for a (?:table|booking|reservation)",
               r"just (?:the|wanted the|want the|need the) (?:info|information|details)",
               r"no reservation", r"just looking", r"won't be booking", r"not booking",
               r"i'll book (?:it )?myself", r"no need to reserve", r"not reserve"],
    "affirm": [r"yes", r"yeah", r"yep", r"yup", r"sure", r"correct", r"right", r"ok", r"okay",
               r"great", r"perfect", r"sounds good", r"book it", r"book that", r"please do",
               r"go ahead", r"fine", r"that works", r"exactly", r"absolutely", r"lovely",
               r"please book", r"reserve it", r"that one", r"yes please", r"do it"],
    "negate": [r"no", r"nope", r"nah", r"wrong", r"incorrect", r"not right", r"not correct",
               r"not what", r"not quite", r"i said", r"i meant"],
    "done": [r"thanks", r"thank you", r"thank", r"that's all", r"that is all", r"thats all",
             r"nothing else", r"bye", r"goodbye", r"cheers", r"that's everything", r"ta",
             r"that'll be all", r"all good", r"i'm done", r"im done", r"that's it", r"thx"],
    # words the typo correction may produce (besides values, names and numbers)
    "keywords": ["phone", "telephone", "number", "address", "postcode", "booking", "book",
                 "table", "reservation", "people", "persons", "guests", "adults", "children",
                 "anything", "another", "something", "different", "alternative", "restaurant",
                 "change", "quarter", "half", "thirty", "fifteen", "lunchtime", "please",
                 "thanks", "goodbye", "anywhere", "preference", "matter", "expensive",
                 "cheap", "moderate", "located", "whereabouts", "contact", "couple"],
    # common words never "corrected" into a vocabulary word
    "common": ("about above after again all also and any anything are area around back bad be "
               "because been before best better big book booked both bring but buy by call "
               "came can cant come could day did didnt does doing done dont down each eat "
               "eating eats else even evening ever every fast feel few find fine first food "
               "for friday from get give go going good got great had has have having hear "
               "hello help her here hers hey him his home hope how idea into is isnt it its "
               "just keep kind know last late later least less let like little long look "
               "looking lot love made make many may maybe me mean meet might mind more "
               "morning most much must my name near need never new next nice night none "
               "nothing now of off okay old once one only open or other our out over own "
               "part party pay place plan please plus pretty price quite rather real really "
               "right said same saturday say see seen she should show side since small so "
               "some somewhere soon sort still such sunday sure take tell than thank thanks "
               "that thats the their them then there these they thing things think this "
               "those though thought through thin time to today told tomorrow tonight too "
               "town try two under until up us use very want wanted wants was way we week "
               "weekend well went were what when where which while who why wife will wish "
               "with without wont work would yeah year yes yet you your yours west east "
               "north south cheap date dinner lunch meal table guys folks kids mates tasty "
               "fancy spicy posh cosy quiet lovely local lots that's what's where's it's "
               "i'm i'd we'd don't can't won't there's here's heard said says wait sorry "
               "hmm actually instead maybe also just only mid range same anyway bye post "
               "ring rang mine nine tea tell bill hall halls hill mill sure wine bar bars "
               "pub pubs cafe cafes inn person code codes post cooking cook bookings changed "
               "changes parts part greet greeting reference preferences restaurants places "
               "spots spot options option friends friend husband partner family birthday "
               "anniversary breakfast brunch seats seat tables menu menus drinks drink dish "
               "dishes serve serves served ones thing nearby close far walk walking street "
               "road sounds sound works worked wonderful awesome excellent brilliant cool "
               "alright fine noted got lost mistake typo oops hungry starving craving "
               "crave want would love like please could should might must shall hours hour "
               "minutes open opening closes closing today tomorrow later earlier sooner "
               "people guest guests booking booked cancel cancelled make made move moved "
               "instead other others another different same similar second third next last "
               "first happy lucky blue green golden star four nights court leaf mint route "
               "zone crown castle silk valley pearl lantern bakery anchor").split(),
}
