"""The simulated user's words: TRUE user acts -> text, through a phrasing bank (templates and
paraphrases) and a typo channel. The text then goes through the runtime's own understanding
(``runtime.dialogue_understanding``), so the policy trains on the errors it will meet.

Two banks with disjoint wordings: ``TRAIN`` (used in training and in the noisy evaluations)
and ``HELDOUT`` (never used in training: evaluation only). Typo channel at noise ``e``: each
word of three or more letters gets one edit (swap, deletion, doubling, keyboard neighbour)
with probability ``e`` and is dropped with probability ``e / 4``.
"""
from __future__ import annotations

import numpy as np

from runtime.dialogue_domain import CONSTRAINTS, DONTCARE, Catalogue

_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()

TRAIN = {
    "values": {
        "cuisine": {"italian": ["italian", "pizza"], "chinese": ["chinese", "cantonese"],
                    "indian": ["indian", "curry"], "french": ["french", "bistro"],
                    "thai": ["thai"], "japanese": ["japanese", "sushi"],
                    "mexican": ["mexican", "tacos"], "british": ["british", "english"]},
        "area": {"north": ["north", "northern part"], "south": ["south", "southern part"],
                 "east": ["east", "eastern part"], "west": ["west", "western part"],
                 "centre": ["centre", "city centre", "center"]},
        "price": {"cheap": ["cheap", "inexpensive", "budget"],
                  "moderate": ["moderate", "moderately priced", "mid range"],
                  "expensive": ["expensive", "upscale", "pricey"]},
    },
    "full": ["I'm looking for a {price} {cuisine} restaurant{area}", "I want {price} {cuisine} "
             "food{area}", "Find me a {price} {cuisine} place{area}",
             "Can you find a {price} {cuisine} restaurant{area}?"],
    "area": [" in the {v}", " in the {v} of town", " somewhere in the {v}"],
    "answer": {"cuisine": ["{v} food please.", "{v}.", "I'd like {v} food."],
               "area": ["The {v}.", "In the {v} please.", "Somewhere in the {v}."],
               "price": ["Something {v}.", "{v}.", "A {v} one please."]},
    "dontcare": {"cuisine": ["any kind of food is fine", "I don't mind the food"],
                 "area": ["anywhere in town is fine", "any area"],
                 "price": ["any price range is fine", "the price doesn't matter"]},
    "dontcare_answer": ["I don't mind.", "It doesn't matter.", "No preference."],
    "exclude": {"cuisine": ["anything but {v}", "not {v}", "no {v} food"],
                "area": ["not the {v}", "anywhere but the {v}"],
                "price": ["nothing too {v}", "not {v}"]},
    "mind": ["Actually, make it {x} instead.", "Sorry, I changed my mind: {x}."],
    "fallback": ["Ok, {x} then.", "Fine, let's try {x}."],
    "people": ["{n} people", "a table for {n}", "there will be {n} of us"],
    "one_person": ["just me", "a table for one person"],
    "time": ["at {t}"],
    "time_forms": ["24h", "pm", "pm_dot"],
    "booking": ["{p} {t}, please.", "Book {p} {t}."],
    "change": ["Can you change that to {x}?", "Could you make it {x} instead?"],
    "negate": ["No,", "No, sorry,", "That's not right,"],
    "affirm": ["Yes.", "Yes please.", "That's right."],
    "yes_but": ["Yes, but", "Yes, except"],
    "book_it": ["Sounds good, please book it.", "Great, book it please."],
    "reject_no": ["No, I don't like that one.", "No thanks."],
    "reqalts": ["Anything else?", "What else is there?", "Is there another one?"],
    "reject_name": ["I don't want {name}.", "Not {name}, please."],
    "request": ["What is the {what}?", "Could you give me the {what}?", "Can I have the {what}?"],
    "what": {"phone": ["phone number"], "address": ["address"], "postcode": ["postcode"]},
    "name_request": ["What is the {what} of {name}?", "Can I have the {what} for {name}?"],
    "nobook": ["No need to book.", "I don't need to book."],
    "done": ["Thanks, that's all.", "No, thank you. Goodbye!", "Great, thank you. Bye!"],
}

HELDOUT = {
    "values": {
        "cuisine": {"italian": ["pasta", "italian cooking"], "chinese": ["dim sum", "chinese"],
                    "indian": ["tandoori", "biryani"], "french": ["brasserie", "french"],
                    "thai": ["pad thai", "thai"], "japanese": ["ramen", "sashimi"],
                    "mexican": ["burritos", "tex mex"], "british": ["pub food", "gastropub"]},
        "area": {"north": ["northside", "north side"], "south": ["south side", "southside"],
                 "east": ["east side", "eastside"], "west": ["west side", "westside"],
                 "centre": ["middle of town", "downtown", "central"]},
        "price": {"cheap": ["affordable", "low cost", "cheaper"],
                  "moderate": ["mid price", "reasonably priced", "medium priced"],
                  "expensive": ["posh", "upmarket", "fancy"]},
    },
    "full": ["hi there, any {price} {cuisine}{area}?", "we'd love some {price} {cuisine}{area}",
             "got any {price} {cuisine} spots{area}", "hey, i fancy {price} {cuisine}{area}"],
    "area": [" around the {v}", " over in the {v}", " near the {v}"],
    "answer": {"cuisine": ["hmm, {v} i think", "{v} would be nice", "let's go with {v}"],
               "area": ["around the {v}", "{v} if possible", "over in the {v}"],
               "price": ["{v} ideally", "we want {v}", "{v} would be best"]},
    "dontcare": {"cuisine": ["not fussy about the food", "food doesn't matter"],
                 "area": ["wherever", "location doesn't matter"],
                 "price": ["money is no object", "cost doesn't matter"]},
    "dontcare_answer": ["up to you", "any", "whatever", "surprise me"],
    "exclude": {"cuisine": ["anything except {v}", "we hate {v}", "rather not have {v}"],
                "area": ["avoid the {v}", "anything except the {v}"],
                "price": ["not too {v}", "nothing {v}"]},
    "mind": ["hmm wait, {x} instead", "on second thought {x}"],
    "fallback": ["alright, {x} is fine", "ok go for {x}"],
    "people": ["{w} of us", "party of {n}", "{w} people"],
    "one_person": ["only me", "on my own"],
    "time": ["around {t}", "{t}", "at {t} if that works"],
    "time_forms": ["half", "spoken", "hhmm", "h", "pm_dot"],
    "booking": ["we're {p}, {t}", "book for {p} {t} then"],
    "change": ["actually could we do {x} instead", "please move it to {x}"],
    "negate": ["nope,", "no no,", "wrong,"],
    "affirm": ["yep", "yeah perfect", "correct"],
    "yes_but": ["yeah but", "almost, but"],
    "book_it": ["lovely, go ahead and reserve it", "yes please do"],
    "reject_no": ["nah", "nope, don't like it"],
    "reqalts": ["not that one, what else is there?", "any others?", "something else maybe?"],
    "reject_name": ["i'd rather not go to {name}", "don't want {name}"],
    "request": ["and the {what}?", "what's their {what}", "need the {what} please"],
    "what": {"phone": ["number", "telephone number"], "address": ["address", "street address"],
             "postcode": ["post code", "postcode"]},
    "name_request": ["what's the {what} for {name}", "{name} - {what}?"],
    "nobook": ["no need to book, thanks", "won't be booking"],
    "done": ["cheers, bye", "all good, thanks", "that's it, ta"],
}
HELDOUT_PEOPLE = {2: ["a couple", "me and my wife", "the two of us"],
                  4: ["two adults and two kids", "me and three friends"],
                  3: ["me and two friends"], 5: ["three adults and two kids"]}
BANKS = {"train": TRAIN, "heldout": HELDOUT}


def _pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def time_text(value: str, form: str) -> str:
    h, m = (int(x) for x in value.split(":"))
    h12 = h - 12 if h > 12 else h
    ampm = "pm" if h >= 12 else "am"
    if form == "24h":
        return value
    if form == "hhmm":
        return f"{h:02d}{m:02d}"
    if form == "h":
        return f"{h}h{m:02d}" if m else f"{h}h"
    if form == "pm_dot":
        return f"{h12}.{m:02d}{ampm}" if m else f"{h12}{ampm}"
    words = _NUMBER_WORDS
    if form == "half" and m == 30:
        return f"half {words[h12] if h12 <= 12 else h12}"
    if form == "spoken" and h12 <= 12:
        return f"{words[h12]} thirty" if m == 30 else f"{words[h12]} o'clock"
    return f"{h12}:{m:02d}{ampm}" if m else f"{h12}{ampm}"


def people_text(n: str, bank: dict, rng) -> str:
    k = int(n)
    if k == 1:
        return _pick(rng, bank["one_person"])
    if bank is HELDOUT and k in HELDOUT_PEOPLE and rng.random() < 0.5:
        return _pick(rng, HELDOUT_PEOPLE[k])
    word = _NUMBER_WORDS[k] if k < len(_NUMBER_WORDS) else str(k)
    return _pick(rng, bank["people"]).format(n=k, w=word)


def value_text(slot: str, value: str, bank: dict, rng) -> str:
    return _pick(rng, bank["values"][slot].get(value, [value]))


def _constraints_text(info: dict, excl: dict, bank: dict, rng, single: bool) -> list[str]:
    parts = []
    if single and len(info) + len(excl) == 1:
        slot = next(iter(info or excl))
        if slot in excl:
            return [_pick(rng, bank["exclude"][slot]).format(v=value_text(slot, excl[slot],
                                                                         bank, rng))]
        v = info[slot]
        if v == DONTCARE:
            return [_pick(rng, bank["dontcare_answer"])]
        return [_pick(rng, bank["answer"][slot]).format(v=value_text(slot, v, bank, rng))]
    spec = {s: value_text(s, v, bank, rng) for s, v in info.items() if v != DONTCARE}
    if spec:
        area = _pick(rng, bank["area"]).format(v=spec["area"]) if "area" in spec else ""
        text = _pick(rng, bank["full"]).format(price=spec.get("price", ""),
                                               cuisine=spec.get("cuisine", ""), area=area)
        parts.append(" ".join(text.split()).replace(" ?", "?"))
    for s, v in info.items():
        if v == DONTCARE:
            parts.append(_pick(rng, bank["dontcare"][s]))
    for s, v in excl.items():
        parts.append(_pick(rng, bank["exclude"][s]).format(v=value_text(s, v, bank, rng)))
    return parts


def _booking_text(info: dict, bank: dict, rng, intent: str) -> list[str]:
    p = people_text(info["people"], bank, rng) if "people" in info else None
    t = None
    if "time" in info:
        t = _pick(rng, bank["time"]).format(t=time_text(info["time"],
                                                        _pick(rng, bank["time_forms"])))
    if intent == "change":
        return [_pick(rng, bank["change"]).format(x=p or t)]
    if p and t:
        return [_pick(rng, bank["booking"]).format(p=p, t=t)]
    return [p or t]


def user_text(acts: list, intent: str, rng: np.random.Generator, bank: dict,
              cat: Catalogue) -> str:
    """Text for TRUE user acts ``(act, slot, value)`` said with ``intent`` (see
    ``UserSimulator.intent``)."""
    kinds = [a[0] for a in acts]
    info = {s: v for a, s, v in acts if a == "inform"}
    excl = {s: v for a, s, v in acts if a == "exclude"}
    reqs = [s for a, s, _ in acts if a == "request"]
    parts = []
    if "negate" in kinds:
        parts.append(_pick(rng, bank["reject_no"] if intent == "reject" else bank["negate"]))
    if "reqalts" in kinds:
        parts.append(_pick(rng, bank["reqalts"]))
    for a, _, v in acts:
        if a == "reject_name":
            parts.append(_pick(rng, bank["reject_name"]).format(name=cat.names[v]))
    if "affirm" in kinds:
        parts.append(_pick(rng, bank["book_it" if intent == "book" else "yes_but"
                               if intent == "yes_but" else "affirm"]))
    c = {s: v for s, v in info.items() if s in CONSTRAINTS}
    if intent in ("mind", "fallback") and len(c) == 1:
        slot, v = next(iter(c.items()))
        parts.append(_pick(rng, bank[intent]).format(x=value_text(slot, v, bank, rng)))
    elif c or excl:
        parts += _constraints_text(c, excl, bank, rng, single=intent != "open")
    if "people" in info or "time" in info:
        parts += _booking_text(info, bank, rng, intent)
    names = [v for a, _, v in acts if a == "name"]
    if names:
        what = " and ".join(_pick(rng, bank["what"][q]) for q in reqs) or "phone number"
        parts.append(_pick(rng, bank["name_request"]).format(what=what, name=cat.names[names[0]]))
    elif reqs:
        what = " and the ".join(_pick(rng, bank["what"][q]) for q in reqs)
        parts.append(_pick(rng, bank["request"]).format(what=what))
    if "nobook" in kinds:
        parts.append(_pick(rng, bank["nobook"]))
    if "done" in kinds and "nobook" not in kinds:
        parts.append(_pick(rng, bank["done"]))
    text = " ".join(p for p in parts if p)
    return text[:1].upper() + text[1:] if text else "Hmm."


_KEYS = "qwertyuiop asdfghjkl zxcvbnm".split()
_NEIGHBOURS = {}
for _row in _KEYS:
    for _i, _ch in enumerate(_row):
        _NEIGHBOURS[_ch] = _row[max(0, _i - 1):_i] + _row[_i + 1:_i + 2]


def typo(word: str, rng) -> str:
    i = int(rng.integers(len(word) - 1))
    u = rng.random()
    if u < 0.4:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if u < 0.6:
        return word[:i] + word[i + 1:]
    if u < 0.8:
        return word[:i] + word[i] + word[i:]
    ch = word[i].lower()
    return word[:i] + (_pick(rng, _NEIGHBOURS[ch]) if _NEIGHBOURS.get(ch) else ch) + word[i + 1:]


SECOND_EDIT = 0.2      # of misspelt words, the share with a second edit (Damerau, 1964: ~80% one)
DIGIT_SHARE = 0.5      # a token with digits is mistyped at half the word rate (one digit)
_DIGIT_ROW = "1234567890"


def digit_typo(word: str, rng) -> str:
    """One digit replaced by a neighbour on the number row ("19:30" -> "19:20", "4" -> "5"):
    a real-word error that no spelling correction can see."""
    at = [i for i, ch in enumerate(word) if ch.isdigit()]
    i = at[int(rng.integers(len(at)))]
    k = _DIGIT_ROW.index(word[i])
    near = _DIGIT_ROW[max(0, k - 1):k] + _DIGIT_ROW[k + 1:k + 2]
    return word[:i] + near[int(rng.integers(len(near)))] + word[i + 1:]


def noisy(text: str, noise: float, rng: np.random.Generator) -> str:
    """The typo channel: edits (a fifth of them twice) and drops words of three or more
    letters; mistypes a digit of a number or time at half that rate."""
    if noise <= 0:
        return text
    out = []
    for w in text.split(" "):
        if any(ch.isdigit() for ch in w) and rng.random() < noise * DIGIT_SHARE:
            w = digit_typo(w, rng)
        elif len(w) >= 3 and w.isalpha():
            u = rng.random()
            if u < noise / 4:
                continue
            if u < noise:
                w = typo(w, rng)
                if len(w) >= 3 and rng.random() < SECOND_EDIT:     # a misspelling, not a slip
                    w = typo(w, rng)
        out.append(w)
    return " ".join(out)
