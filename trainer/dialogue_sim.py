"""Restaurant-booking dialogue simulator (numpy only; no TensorFlow).

* **Catalogue** (:func:`make_catalogue`): seeded restaurants with name, cuisine (8), area (5),
  price (3), phone and address. Shipped as JSON with the system templates
  (:data:`SYSTEM_TEMPLATES`) and the keyword lexicon of the runtime NLU (:data:`LEXICON`).
* **User goal** (:func:`sample_goal`): drawn from a real restaurant: constraints
  cuisine/area/price, each "dontcare" with probability ``p_dontcare`` (at most two); or, with
  probability ``p_unsatisfiable`` (0.1), a combination no restaurant has, which the user relaxes
  (area or price becomes "dontcare") when the system rightly says there is none; booking
  details people (1-8) and time; requests, a subset of phone/address.
* **Agenda-based user** (:class:`UserSimulator`, TC-Bot/PyDial style). It opens with some of its
  constraints (and sometimes the booking details), answers requests, affirms or corrects
  confirmations, accepts an offer that satisfies its goal (and then gives booking details, asks
  for the info it wants or says "book it"), rejects a wrong offer or a wrong booking with the
  correct value, says "that's all" once booked and informed. Patience: it hangs up after
  ``patience`` system turns (12-20) or after more than ``tolerance`` (0-2) system mistakes
  (a wrong offer, a wrong booking, a "no such restaurant" when there is one).
* **NLU error channel** (:func:`corrupt`): every slot value the user says is, with probability
  ``error_rate``, substituted by another value of that slot (share ``substitute_share``) or
  dropped; confidences are drawn from N(0.85, 0.1) for correct values and N(0.5, 0.15) for
  substituted ones (clipped), so a low confidence is evidence, not proof, of an error.
* **Env** (:class:`DialogueEnv`, Gymnasium API): the observation is
  ``runtime.dialogue.Tracker.features()`` of the noisy acts (the same code the runtime runs);
  actions are ``runtime.dialogue.ACTIONS`` (masked by ``runtime.dialogue.mask_from_obs``).
  Reward -1 per system turn, +20 when the system says bye after booking a restaurant that
  satisfies the TRUE goal (right people and time) and informing every requested slot of it,
  -20 on any other end (bye too early, user hangs up, 30-turn cap).

Baselines:

* :func:`rule_policy` (hand-written, honest): if the user said "that's all", bye; if the user
  asked for info about the offered restaurant, inform; else request the first missing
  constraint (cuisine, area, price); else offer a matching restaurant (not one the user
  rejected; "no match" makes the user correct itself); else request the missing booking detail
  (people, time); else book; else inform what was requested; else ask "anything else?".
  It trusts what it heard (never confirms) but follows every correction the user makes.
* :func:`rule_confirm_policy`: the same, plus an explicit confirmation of any slot whose
  confidence is below ``threshold`` (0.7) before offering/booking (PyDial's hand-crafted
  policy does this); reported as a second, stronger baseline.
* random: uniform over the valid actions (the action mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.dialogue import (
    A_BOOK, A_BYE, A_CONFIRM, A_INFORM, A_OFFER, A_REQMORE, A_REQUEST, ACTIONS, BOOKING,
    CONSTRAINTS, DONTCARE, INFORMABLE, N_ACTIONS, OBS_DIM, REQUESTABLE, Catalogue, SystemAct,
    Tracker, mask_from_obs, parse_system, resolve_action,
)

# ----------------------------------------------------------------------------- ontology + data
ONTOLOGY = {
    "cuisine": ["italian", "chinese", "indian", "french", "thai", "japanese", "mexican", "british"],
    "area": ["north", "south", "east", "west", "centre"],
    "price": ["cheap", "moderate", "expensive"],
}
PEOPLE = [str(n) for n in range(1, 9)]
TIMES = ["12:00", "12:30", "13:00", "13:30", "17:30", "18:00", "18:30", "19:00", "19:30",
         "20:00", "20:30", "21:00"]
VALUES = {**ONTOLOGY, "people": PEOPLE, "time": TIMES}

_NAMES = {
    "italian": ["Trattoria Bella", "Pizzeria Napoli", "Da Mario", "Osteria Verde", "La Luna",
                "Casa Toscana", "Il Forno", "Pasta Fresca", "Villa Roma", "Bottega Rossa",
                "Piccolo Mondo", "Sapori"],
    "chinese": ["Jade Garden", "Golden Dragon", "Lotus House", "Bamboo Palace", "Red Lantern",
                "Panda Kitchen", "Silk Road", "Happy Valley", "Peking Garden", "Dragon Pearl",
                "Ming Court", "Lucky Star"],
    "indian": ["Taj Mahal", "Saffron", "Curry Garden", "Bombay Spice", "Maharaja", "Kohinoor",
               "Tandoori Nights", "Royal Bengal", "Jaipur", "Spice Route", "Masala Zone",
               "Mint Leaf"],
    "french": ["Le Jardin", "Chez Marcel", "Bistro Paris", "La Maison", "Le Petit Four",
               "Cafe Rouge", "Le Gavroche", "Brasserie Blanc", "La Belle Epoque", "Chez Nous",
               "Le Moulin", "Cote Sud"],
    "thai": ["Bangkok House", "Siam Orchid", "Baan Thai", "Thai Basil", "Lemongrass",
             "Chiang Mai", "Royal Siam", "Blue Elephant", "Phuket Kitchen", "Sawasdee",
             "Lotus Thai", "Thai Orchid"],
    "japanese": ["Sakura", "Kyoto Kitchen", "Sushi Zen", "Ramen Ya", "Wagamama", "Fuji",
                 "Hanami", "Yoshino", "Tokyo Joe", "Koi", "Umami House", "Miso Garden"],
    "mexican": ["El Sombrero", "Casa Mexicana", "La Cantina", "Taqueria Azul", "Chiquito",
                "El Toro", "Cafe Habanero", "Frida", "Agave", "Los Amigos", "La Paloma",
                "Mesa Verde"],
    "british": ["The Eagle", "The Red Lion", "The Old Bakery", "The Crown Inn", "The Anchor",
                "The Mill", "The Pickerel", "The Granta", "The Plough", "The Fort St George",
                "The Green Dragon", "The Castle Inn"],
}
_STREETS = {
    "north": ["Chesterton Road", "Histon Road", "Milton Road", "Arbury Road"],
    "south": ["Hills Road", "Trumpington Road", "Long Road", "Cherry Hinton Road"],
    "east": ["Newmarket Road", "Mill Road", "Barnwell Road", "Coldhams Lane"],
    "west": ["Madingley Road", "Huntingdon Road", "Barton Road", "Grange Road"],
    "centre": ["Regent Street", "Kings Parade", "Market Square", "Bridge Street"],
}


def make_catalogue(seed: int = 0, n: int = 80) -> dict:
    """Seeded catalogue of ``n`` restaurants: every (cuisine, area) pair gets ``n // 40`` of them
    (so each cuisine is served in every area), with a random price (cheap 40%, moderate 35%,
    expensive 25%): some (cuisine, area, price) combinations have no restaurant."""
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
            restaurants.append({
                "name": names[k], "cuisine": c, "area": str(area),
                "price": str(rng.choice(ONTOLOGY["price"], p=[0.4, 0.35, 0.25])),
                "phone": f"01223 {int(rng.integers(100000, 999999))}",
                "address": f"{int(rng.integers(1, 120))} {rng.choice(_STREETS[str(area)])}",
            })
    return {"ontology": ONTOLOGY, "people": PEOPLE, "times": TIMES, "restaurants": restaurants}


SYSTEM_TEMPLATES = {
    "greet": ["Hello! I can help you book a table at a restaurant. What are you looking for?",
              "Hi, welcome to the restaurant booking service. What kind of restaurant would "
              "you like?"],
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
    "nomatch": ["Sorry, there is no {constraints}.",
                "I'm sorry, I can't find a {constraints}."],
    "book": ["Done: a table for {people} at {name} at {time}. Your reference is {ref}.",
             "I have booked {name} for {people} at {time}. The reference number is {ref}."],
    "inform_phone": ["The phone number of {name} is {phone}.", "You can call {name} on {phone}."],
    "inform_address": ["{name} is at {address}.", "The address of {name} is {address}."],
    "inform_phone_address": ["{name} is at {address} and the phone number is {phone}.",
                             "The address of {name} is {address}, phone {phone}."],
    "reqmore": ["Is there anything else I can help you with?", "Can I help with anything else?"],
    "reqmore_open": ["Could you tell me more about what you are looking for?",
                     "Any other preferences I should know about?"],
    "bye": ["Thank you, goodbye!", "Enjoy your meal. Goodbye!"],
}

# keyword lexicon of the runtime NLU; entries of the word lists are regex fragments
LEXICON = {
    "values": {
        "cuisine": {
            "italian": ["pizza", "pasta", "italy"],
            "chinese": ["dim sum", "cantonese", "noodles", "china"],
            "indian": ["curry", "tandoori", "india"],
            "french": ["bistro", "france"],
            "thai": ["pad thai", "thailand"],
            "japanese": ["sushi", "ramen", "japan"],
            "mexican": ["tacos", "taco", "burrito", "mexico"],
            "british": ["english", "pub food", "fish and chips", "gastropub"],
        },
        "area": {
            "north": ["northern", "north side", "uptown"],
            "south": ["southern", "south side"],
            "east": ["eastern", "east side"],
            "west": ["western", "west side"],
            "centre": ["center", "central", "city centre", "city center", "downtown",
                       "town centre"],
        },
        "price": {
            "cheap": ["inexpensive", "budget", "affordable", "low cost", "cheaply", "cheapest"],
            "moderate": ["moderately priced", "moderately", "mid range", "reasonably priced",
                         "reasonable", "average price"],
            "expensive": ["pricey", "upscale", "fancy", "posh", "high end", "luxury",
                          "expensively"],
        },
    },
    "dontcare_cuisine": [r"any (?:kind |type |sort )?of food", r"any food", r"any cuisine",
                         r"whatever food", r"(?:food|cuisine) does(?:n't| not) matter",
                         r"don't care about the (?:food|cuisine)"],
    "dontcare_area": [r"anywhere(?: in town| in the city)?", r"any area",
                      r"any part of (?:town|the city)",
                      r"area does(?:n't| not) matter", r"location does(?:n't| not) matter",
                      r"don't care about the area"],
    "dontcare_price": [r"any price(?: range)?", r"price does(?:n't| not) matter",
                       r"whatever price", r"don't care about the price", r"any budget"],
    "dontcare": [r"i don't mind", r"i dont mind", r"don't mind", r"does(?:n't| not) matter",
                 r"doesnt matter", r"don't care", r"dont care", r"no preference", r"whatever",
                 r"any is fine", r"anything(?! else)", r"either is fine", r"i'm easy"],
    "request_phone": [r"phone", r"telephone", r"number(?! of)", r"call them", r"contact"],
    "request_address": [r"address", r"where is it", r"where's it", r"located",
                        r"how do i get there"],
    "affirm": [r"yes", r"yeah", r"yep", r"yup", r"sure", r"correct", r"right", r"ok", r"okay",
               r"great", r"perfect", r"sounds good", r"book it", r"please do", r"go ahead",
               r"fine", r"that works", r"exactly", r"absolutely", r"lovely"],
    "negate": [r"no", r"nope", r"nah", r"wrong", r"incorrect", r"not right", r"not correct",
               r"not what", r"not quite", r"i said"],
    "done": [r"thanks", r"thank you", r"thank", r"that's all", r"that is all", r"thats all",
             r"nothing else", r"bye", r"goodbye", r"cheers", r"that's everything"],
}


# ----------------------------------------------------------------------------- config + goal
@dataclass
class SimConfig:
    error_rate: float | tuple = 0.0      # NLU error prob per slot value; (lo, hi) = per episode
    substitute_share: float = 0.7        # share of errors that substitute (the rest drop)
    conf_correct: tuple = (0.85, 0.10)   # mean, std of the confidence of a correct value
    conf_wrong: tuple = (0.50, 0.15)     # ... of a substituted value
    patience: tuple = (12, 20)           # system turns before the user hangs up (inclusive)
    tolerance: tuple = (0, 2)            # system mistakes tolerated (inclusive range)
    p_dontcare: float = 0.2
    p_unsatisfiable: float = 0.1         # no restaurant fits; relaxed on a right "no match"
    p_open_booking: float = 0.3          # opening turn also gives people/time
    p_extra_inform: float = 0.25         # answering a request, also volunteer one more slot
    max_turns: int = 30
    reward_success: float = 20.0
    reward_failure: float = -20.0
    turn_cost: float = 1.0


@dataclass
class Goal:
    constraints: dict
    people: str
    time: str
    requests: tuple
    target: int = -1                     # the restaurant the goal was drawn from (-1: none)
    relax: str | None = None             # unsatisfiable goal: the slot given up on "no match"

    def value(self, slot: str):
        if slot in CONSTRAINTS:
            return self.constraints[slot]
        return self.people if slot == "people" else self.time


def sample_goal(cat: Catalogue, rng: np.random.Generator, cfg: SimConfig) -> Goal:
    """A goal drawn from a real restaurant (some slots dontcare), or with probability
    ``p_unsatisfiable`` a (cuisine, area, price) with no restaurant whose ``relax`` slot, once
    "dontcare", has one."""
    requests = tuple(q for q in REQUESTABLE if rng.random() < 0.5)
    people, time = str(rng.choice(PEOPLE)), str(rng.choice(TIMES))
    if rng.random() < cfg.p_unsatisfiable:
        for _ in range(20):
            c = {s: str(rng.choice(ONTOLOGY[s])) for s in CONSTRAINTS}
            if len(cat.matches(c)):
                continue
            relax = [s for s in ("price", "area") if len(cat.matches({**c, s: DONTCARE}))]
            if relax:
                return Goal(c, people, time, requests, -1, relax[int(rng.integers(len(relax)))])
    r = int(rng.integers(len(cat)))
    rest = cat.restaurants[r]
    constraints = {s: rest[s] for s in CONSTRAINTS}
    dc = [s for s in CONSTRAINTS if rng.random() < cfg.p_dontcare]
    for s in dc[:2]:
        constraints[s] = DONTCARE
    return Goal(constraints, people, time, requests, r)


# ----------------------------------------------------------------------------- user simulator
class UserSimulator:
    """Agenda-based user: produces TRUE user acts ``(act, slot, value, 1.0)``."""

    def __init__(self, goal: Goal, cat: Catalogue, rng: np.random.Generator, cfg: SimConfig):
        self.goal, self.cat, self.rng, self.cfg = goal, cat, rng, cfg
        self.patience = int(rng.integers(cfg.patience[0], cfg.patience[1] + 1))
        self.tolerance = int(rng.integers(cfg.tolerance[0], cfg.tolerance[1] + 1))
        self.said: set[str] = set()
        self.accepted = None
        self.booked = None
        self.received: dict[str, int] = {}
        self.mistakes = 0
        self.turns = 0
        self.ended = False

    # -- helpers ---------------------------------------------------------------------------------
    def _inform(self, slots) -> list:
        self.said.update(slots)
        return [("inform", s, self.goal.value(s), 1.0) for s in slots]

    def _violated(self, r: int) -> list:
        rest = self.cat.restaurants[r]
        return [s for s in CONSTRAINTS
                if self.goal.constraints[s] != DONTCARE and rest[s] != self.goal.constraints[s]]

    def pending_requests(self) -> list:
        return [q for q in self.goal.requests
                if self.booked is None or self.received.get(q) != self.booked]

    @property
    def success(self) -> bool:
        return self.booked is not None and not self.pending_requests()

    @property
    def hung_up(self) -> bool:
        return self.mistakes > self.tolerance or self.turns >= self.patience

    def opening(self) -> list:
        specific = [s for s in CONSTRAINTS if self.goal.constraints[s] != DONTCARE]
        slots = [s for s in specific if self.rng.random() < 0.6]
        if not slots:
            slots = [specific[int(self.rng.integers(len(specific)))]]
        if self.rng.random() < self.cfg.p_open_booking:
            slots += list(BOOKING)
        return self._inform(slots)

    def _next(self) -> list:
        """What the user wants next (its agenda) when nothing in particular is asked."""
        g = self.goal
        if self.accepted is None:
            unsaid = [s for s in CONSTRAINTS if s not in self.said]
            return self._inform(unsaid or [s for s in CONSTRAINTS if g.constraints[s] != DONTCARE])
        if self.booked is None:
            unsaid = [s for s in BOOKING if s not in self.said]
            if unsaid:
                return self._inform(unsaid)
            pending = [q for q in g.requests if self.received.get(q) != self.accepted]
            if pending and self.rng.random() < 0.3:
                return [("request", q, None, 1.0) for q in pending]
            return [("affirm", None, None, 1.0)]
        pending = self.pending_requests()
        if pending:
            return [("request", q, None, 1.0) for q in pending]
        return [("done", None, None, 1.0)]

    def respond(self, act: SystemAct) -> list:
        """The user's answer to a system act (updates patience; check ``hung_up``)."""
        self.turns += 1
        g, a = self.goal, act.action
        if a == A_BYE:
            self.ended = True
            return []
        name = ACTIONS[a] if a < N_ACTIONS else "none"
        if name.startswith("request_"):
            out = self._inform([act.slot])
            extra = [s for s in INFORMABLE if s not in self.said
                     and not (s in CONSTRAINTS and g.constraints[s] == DONTCARE)]
            if extra and self.rng.random() < self.cfg.p_extra_inform:
                out += self._inform([extra[0]])
            return out
        if name.startswith("confirm_"):
            if act.value == g.value(act.slot):
                return [("affirm", None, None, 1.0)]
            return [("negate", None, None, 1.0)] + self._inform([act.slot])
        if a == A_OFFER and act.restaurant is None:        # "no such restaurant"
            shown = act.constraints or {}
            wrong = [s for s, v in shown.items()
                     if g.constraints[s] != DONTCARE and v != g.constraints[s]]
            if not wrong and g.relax and not len(self.cat.matches(g.constraints)):
                g.constraints[g.relax] = DONTCARE         # right: there is none; give up a slot
                return self._inform([g.relax])
            self.mistakes += 1
            if wrong:
                return [("negate", None, None, 1.0)] + self._inform(wrong)
            loose = [s for s in shown if g.constraints[s] == DONTCARE]
            return self._inform(loose or [s for s in CONSTRAINTS if g.constraints[s] != DONTCARE])
        if a == A_OFFER:
            wrong = self._violated(act.restaurant)
            if wrong:
                self.mistakes += 1
                return [("negate", None, None, 1.0)] + self._inform(wrong)
            self.accepted = act.restaurant
            return self._next()
        if a == A_BOOK:
            wrong = self._violated(act.restaurant)
            if not wrong:
                wrong = [s for s in BOOKING if getattr(act, s) != g.value(s)]
            if wrong:
                self.mistakes += 1
                return [("negate", None, None, 1.0)] + self._inform(wrong)
            self.accepted = self.booked = act.restaurant
            return self._next()
        if a == A_INFORM:
            if act.restaurant in (self.accepted, self.booked):
                for q in act.slots:
                    self.received[q] = act.restaurant
            return self._next()
        return self._next()                                 # reqmore / nothing understood


# ----------------------------------------------------------------------------- NLU error channel
def corrupt(acts: list, rng: np.random.Generator, error_rate: float, cfg: SimConfig) -> list:
    """The acts the system observes: slot values substituted or dropped, with confidences."""
    out = []
    for act, slot, value, _ in acts:
        if act != "inform":
            out.append((act, slot, value, 1.0))
            continue
        if rng.random() < error_rate:
            if value == DONTCARE or rng.random() >= cfg.substitute_share:
                continue                                               # dropped
            others = [v for v in VALUES[slot] if v != value]
            value = others[int(rng.integers(len(others)))]
            conf = float(np.clip(rng.normal(*cfg.conf_wrong), 0.05, 0.95))
        else:
            conf = float(np.clip(rng.normal(*cfg.conf_correct), 0.3, 1.0))
        out.append((act, slot, value, conf))
    return out


# ----------------------------------------------------------------------------- environment
class DialogueEnv:
    """Gymnasium-style env: the system (agent) talks to a simulated user through a noisy NLU."""

    obs_dim = OBS_DIM
    n_actions = N_ACTIONS

    def __init__(self, catalogue, cfg: SimConfig | None = None, seed: int | None = None):
        self.cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
        self.cfg = cfg or SimConfig()
        self.rng = np.random.default_rng(seed)
        self.user = self.tracker = self.goal = None

    def _error_rate(self) -> float:
        e = self.cfg.error_rate
        if isinstance(e, (tuple, list)):
            return float(self.rng.uniform(e[0], e[1]))
        return float(e)

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.error_rate = float((options or {}).get("error_rate", self._error_rate()))
        self.goal = (options or {}).get("goal") or sample_goal(self.cat, self.rng, self.cfg)
        self.user = UserSimulator(self.goal, self.cat, self.rng, self.cfg)
        self.tracker = Tracker(self.cat)
        true = self.user.opening()
        heard = corrupt(true, self.rng, self.error_rate, self.cfg)
        self.tracker.user(heard)
        self.last = {"user_true": true, "user_heard": heard}
        info = {"goal": self.goal, "error_rate": self.error_rate, **self.last}
        return self.tracker.features(), info

    def action_mask(self) -> np.ndarray:
        return self.tracker.mask()

    def step(self, action: int):
        act = resolve_action(self.tracker, int(action), self.rng)
        self.tracker.system(act)
        true = self.user.respond(act)
        reward = -self.cfg.turn_cost
        terminated = truncated = False
        if self.user.ended:                                    # the system said bye
            terminated = True
            heard = []
        else:
            heard = corrupt(true, self.rng, self.error_rate, self.cfg)
            self.tracker.user(heard)
            if self.user.hung_up:
                terminated = True
            elif self.tracker.turn >= self.cfg.max_turns:
                truncated = True
        success = bool(self.user.ended and self.user.success)
        if terminated or truncated:
            reward += self.cfg.reward_success if success else self.cfg.reward_failure
        self.last = {"system": act, "user_true": true, "user_heard": heard}
        info = {"success": success, "turns": self.tracker.turn, **self.last}
        return self.tracker.features(), float(reward), terminated, truncated, info


# ----------------------------------------------------------------------------- baselines
def rule_policy(t: Tracker) -> int:
    """The hand-written policy described in the module docstring."""
    if t.done:
        return A_BYE
    wants = [r for r in REQUESTABLE if t.requested[r] and not t.informed[r]]
    if wants and t.offered is not None and "request" in t.last_user:
        return A_INFORM
    for s in CONSTRAINTS:
        if t.value[s] is None:
            return A_REQUEST[s]
    if t.offered is None:
        return A_OFFER
    for s in BOOKING:
        if t.value[s] is None:
            return A_REQUEST[s]
    if not t.booked:
        return A_BOOK
    if wants:
        return A_INFORM
    return A_REQMORE


def rule_confirm_policy(t: Tracker, threshold: float = 0.7) -> int:
    """:func:`rule_policy` plus explicit confirmation of low-confidence slots before acting."""
    if t.done:
        return A_BYE
    wants = [r for r in REQUESTABLE if t.requested[r] and not t.informed[r]]
    if wants and t.offered is not None and "request" in t.last_user:
        return A_INFORM
    for s in CONSTRAINTS:
        if t.value[s] is None:
            return A_REQUEST[s]
    for s in CONSTRAINTS:
        if t.value[s] != DONTCARE and not t.confirmed[s] and t.conf[s] < threshold \
                and t.offered is None:
            return A_CONFIRM[s]
    if t.offered is None:
        return A_OFFER
    for s in BOOKING:
        if t.value[s] is None:
            return A_REQUEST[s]
    for s in BOOKING:
        if not t.confirmed[s] and t.conf[s] < threshold and not t.booked:
            return A_CONFIRM[s]
    if not t.booked:
        return A_BOOK
    if wants:
        return A_INFORM
    return A_REQMORE


def tracker_policy(fn):
    """Adapt a per-tracker rule into a batched ``policy(obs, envs) -> actions``."""
    def policy(obs, envs):
        return np.array([fn(e.tracker) for e in envs], np.int64)
    return policy


def random_policy(seed: int = 0):
    rng = np.random.default_rng(seed)

    def policy(obs, envs):
        mask = mask_from_obs(obs)
        keys = np.where(mask, rng.random(mask.shape), -1.0)
        return np.argmax(keys, axis=1)
    return policy


def q_policy(q_fn):
    """Greedy masked policy from a batched Q function ``obs [B, OBS_DIM] -> q [B, N_ACTIONS]``."""
    def policy(obs, envs):
        q = np.asarray(q_fn(np.asarray(obs, np.float32)))
        return np.argmax(np.where(mask_from_obs(obs), q, -np.inf), axis=1)
    return policy


def run_dialogues(policy, catalogue, *, n: int = 1000, error_rate: float = 0.0, seed: int = 0,
                  batch: int = 100, cfg: SimConfig | None = None) -> dict:
    """Simulate ``n`` dialogues (episode i uses seed ``seed * 1_000_003 + i``, so every policy
    meets the same users) -> success rate, mean turns, mean return."""
    base = cfg or SimConfig()
    cfg = SimConfig(**{**base.__dict__, "error_rate": float(error_rate)})
    cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
    successes, turns, returns = [], [], []
    for start in range(0, n, batch):
        envs = [DialogueEnv(cat, cfg) for _ in range(min(batch, n - start))]
        obs = np.stack([e.reset(seed=seed * 1_000_003 + start + i)[0] for i, e in enumerate(envs)])
        ret = np.zeros(len(envs))
        active = list(range(len(envs)))
        while active:
            acts = policy(obs[active], [envs[i] for i in active])
            still = []
            for i, a in zip(active, acts):
                o, r, term, trunc, info = envs[i].step(int(a))
                obs[i] = o
                ret[i] += r
                if term or trunc:
                    successes.append(info["success"])
                    turns.append(info["turns"])
                    returns.append(ret[i])
                else:
                    still.append(i)
            active = still
    return {"success_rate": float(np.mean(successes)), "mean_turns": float(np.mean(turns)),
            "mean_return": float(np.mean(returns)), "dialogues": int(n)}


# ----------------------------------------------------------------------------- user NLG
def _time_text(value: str, rng) -> str:
    h, m = (int(x) for x in value.split(":"))
    if rng.random() < 0.3:
        return value
    suffix = "pm" if h >= 12 else "am"
    h12 = h - 12 if h > 12 else h
    return f"{h12}{suffix}" if m == 0 else f"{h12}:{m:02d}{suffix}"


def user_utterance(acts: list, rng: np.random.Generator, last_sys: SystemAct | None = None) -> str:
    """Template text for TRUE user acts (for text-level simulations through the runtime)."""
    kinds = [a[0] for a in acts]
    info = {s: v for a, s, v, _ in acts if a == "inform"}
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    parts = []
    if "negate" in kinds:
        parts.append(pick(["No,", "No, sorry,", "That's not right,"]))
    if "affirm" in kinds:
        parts.append(pick(["Yes.", "Yes please.", "That's right.", "Sounds good, please book it."]))
    c = {s: info[s] for s in CONSTRAINTS if s in info}
    asked = (last_sys.slot if last_sys is not None and last_sys.action in A_REQUEST.values()
             else None)
    if c:
        if len(c) == 1 and asked in c and c[asked] == DONTCARE and rng.random() < 0.5:
            parts.append(pick(["I don't mind.", "It doesn't matter.", "No preference."]))
        else:
            cuisine, area, price = c.get("cuisine"), c.get("area"), c.get("price")
            adj = price if price not in (None, DONTCARE) else ""
            if cuisine not in (None, DONTCARE):
                np_ = f"{adj} {cuisine} restaurant".strip()
                art = "an" if np_[0] in "aeiou" else "a"
                head = pick([f"I'm looking for {art} {np_}", f"I want {art} {np_}",
                             f"Find me {art} {np_}", f"I want {adj} {cuisine} food"])
            else:
                head = f"Something {adj}" if adj else ("Somewhere" if area not in (None, DONTCARE)
                                                       else "")
            main = f"{head} in the {area}" if area not in (None, DONTCARE) else head
            extras = [text for slot, text in (("cuisine", "any kind of food is fine"),
                                              ("area", "anywhere in town is fine"),
                                              ("price", "any price range is fine"))
                      if c.get(slot) == DONTCARE]
            phrase = ", ".join(x for x in [main] + extras if x)
            phrase = phrase[0].upper() + phrase[1:]
            parts.append(" ".join(phrase.split()) + ".")
    if "people" in info or "time" in info:
        p, t = info.get("people"), info.get("time")
        if p and t:
            who = "1 person" if p == "1" else f"{p} people"
            parts.append(pick([f"A table for {who} at {_time_text(t, rng)}, please.",
                               f"For {who} at {_time_text(t, rng)}."]))
        elif p:
            parts.append(pick([f"{p} people.", f"There will be {p} of us.",
                               f"A table for {p} people."]) if p != "1" else "Just me.")
        else:
            parts.append(pick([f"At {_time_text(t, rng)}.", f"At {_time_text(t, rng)} please."]))
    reqs = [s for a, s, _, _ in acts if a == "request"]
    if reqs:
        what = " and the ".join({"phone": "phone number", "address": "address"}[r] for r in reqs)
        parts.append(pick([f"What is the {what}?", f"Could you give me the {what}?",
                           f"Can I have the {what}?"]))
    if "done" in kinds:
        parts.append(pick(["Thanks, that's all.", "No, thank you. Goodbye!",
                           "Great, thank you. Bye!"]))
    return " ".join(parts) if parts else "Hmm."


def text_dialogue(reply_fn, catalogue, *, seed: int, cfg: SimConfig | None = None,
                  goal: Goal | None = None) -> dict:
    """One dialogue in TEXT: the simulated user speaks :func:`user_utterance` sentences (no
    channel noise: the runtime's keyword NLU is the channel) and ``reply_fn(history, seed)``
    answers (e.g. ``runtime.generate``). The user reads the system text with
    ``runtime.dialogue.parse_system``. -> {"history", "goal", "success", "turns"}."""
    cfg = cfg or SimConfig()
    cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
    rng = np.random.default_rng(seed)
    goal = goal or sample_goal(cat, rng, cfg)
    user = UserSimulator(goal, cat, rng, cfg)
    history = [user_utterance(user.opening(), rng)]
    while True:
        text = reply_fn(list(history), seed * 100 + len(history))
        history.append(text)
        act = parse_system(text, cat, SYSTEM_TEMPLATES, LEXICON)
        true = user.respond(act)
        if user.ended or user.hung_up or user.turns >= cfg.max_turns:
            break
        history.append(user_utterance(true, rng, act))
    return {"history": history, "goal": goal, "success": bool(user.ended and user.success),
            "turns": user.turns}
