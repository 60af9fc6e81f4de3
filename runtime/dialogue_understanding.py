"""Understanding one user turn: text -> dialogue acts ``(act, slot, value, confidence)``.

Acts: ``inform`` (slot value, possibly an *unknown* value such as "ethiopian" that the
catalogue does not serve, or ``dontcare``), ``exclude`` ("anything but italian", "nothing too
fancy"), ``request`` (phone, address, postcode), ``name`` / ``reject_name`` (a restaurant the
user names, or rejects by name), ``reqalts`` ("anything else?", "not that one"), ``nobook``
("no need to book"), ``affirm``, ``negate``, ``done``.

Steps: normalise (lower case, "7.30" -> "7:30", clause breaks stop negation); read at most
``READ_CHARS`` characters; correct typos word by word (:mod:`runtime.dialogue_spelling`);
times (digits, am/pm, "half seven", "quarter to eight", "seven thirty", "20h", "1930",
"lunchtime"), party sizes ("a couple", "me and my wife", "two adults and two kids", number
words up to twenty, "a dozen"), restaurant names, slot values with negation, unknown values,
don't-care, requests, and finally yes/no/bye. The lexicon is shipped as JSON (trainer side:
``trainer.dialogue_lexicon``).

Confidences: canonical value 0.95, synonym 0.85, a corrected typo 0.7 (0.5 if ambiguous),
a fuzzy match of an unfamiliar word to a cuisine two edits away 0.5, unknown value 0.9 (a
lexicon one) or 0.6 (any other word before "food"), context-only readings (a bare number
after "how many people?") 0.8; a time or party size read through a corrected word takes
that word's confidence; a time off the booking grid ("18:39", a digit slip of "18:30"), an
hour with am/pm past 12 ("19pm") or a party of more than twice the largest table ("44") is
read with ``IMPLAUSIBLE`` confidence (0.5). A word of a restaurant's name that was reached
only by correcting a typo ("agve" for "have") does not name that restaurant.
"""
from __future__ import annotations

import re

from runtime.dialogue_domain import (
    A_NONE, A_OFFER, ACTIONS, BOOKING, CONSTRAINTS, DONTCARE, N_ACTIONS, REQUESTABLE, Catalogue, SystemAct,
)
from runtime.dialogue_spelling import Speller, osa_distance

READ_CHARS = 600          # a user turn is read up to this many characters (the rest is ignored)
IMPLAUSIBLE = 0.5         # confidence of a time off the booking grid or an absurd party size

_NUMBER_WORDS = {w: i for i, w in enumerate(
    ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
     "fifteen sixteen seventeen eighteen nineteen twenty").split())}
_NUM = r"(\d{1,2}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
_PEOPLE_NOUN = r"(?:people|persons|person|guests|adults|of us|diners|pax|ppl|heads)"
_NOT_PEOPLE = r"(?! ?(?:people|persons|person|guests|of us|adults|diners|pax|ppl|kids))"

_MALFORMED = re.compile(r"\b(?:1[3-9]|2\d)(?::\d\d)? ?(?:am|pm)\b")   # "19pm", "22:30pm"
_DOT_TIME = re.compile(r"(\d)\.(\d\d)(?!\d)")
_CLAUSE_BREAK = re.compile(r"[.,;!?()]")
_OTHER_CHARS = re.compile(r"[^a-z0-9:'|\s]")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    text = text[:READ_CHARS].lower().replace("’", "'")
    text = _DOT_TIME.sub(r"\1:\2", text)              # 7.30 -> 7:30
    text = _CLAUSE_BREAK.sub(" | ", text)              # clause breaks stop negation
    text = _OTHER_CHARS.sub(" ", text)
    return " " + _SPACES.sub(" ", text).strip() + " "


def number(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBER_WORDS[token]


def hhmm(hour: int, minute: int, ampm: str | None = None, assume_pm: bool = True):
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    elif ampm is None and assume_pm and 1 <= hour <= 11:
        hour += 12
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return f"{hour:02d}:{minute:02d}"


def _t_colon(g):
    h, m, ampm = int(g[0]), int(g[1]), g[2]
    return hhmm(h, m, ampm, assume_pm=len(g[0]) == 1 or ampm is not None)


def _t_half(g):
    return hhmm(number(g[0]), 30)


def _t_quarter(g):
    n = number(g[1])
    return hhmm(n, 15) if g[0] == "past" else hhmm(n - 1 if n > 1 else 12, 45)


def _t_spoken(g):
    return hhmm(number(g[0]), {"thirty": 30, "fifteen": 15, "forty five": 45,
                               "o'clock": 0, "oclock": 0}[g[1]])


# (pattern, value-from-groups); the first pattern that gives a valid time wins
_TIME_PATTERNS = (
    (re.compile(r"\b(\d{1,2}):(\d{2}) ?(am|pm)?\b"), _t_colon),
    (re.compile(r"\b(\d{1,2}) ?(am|pm)\b"), lambda g: hhmm(int(g[0]), 0, g[1])),
    (re.compile(r"\b(\d{1,2}) ?h ?(\d{2})?\b"), lambda g: hhmm(int(g[0]), int(g[1] or 0), None,
                                                              False)),
    (re.compile(r"(?<![\d:])([01]\d|2[0-3])([0-5]\d)(?![\d:])"),
     lambda g: hhmm(int(g[0]), int(g[1]), None, False)),
    (re.compile(r"\bhalf (?:past )?" + _NUM + r"\b"), _t_half),
    (re.compile(r"\bquarter (past|to) " + _NUM + r"\b"), _t_quarter),
    (re.compile(r"\b" + _NUM + r" (thirty|fifteen|forty five|o'clock|oclock)\b"), _t_spoken),
    (re.compile(r"\b(?:at|around|about|by|before|after) " + _NUM + r"\b" + _NOT_PEOPLE),
     lambda g: hhmm(number(g[0]), 0)),
    (re.compile(r"\b(?:time to|move it to|make it) " + _NUM + r"\b" + _NOT_PEOPLE),
     lambda g: hhmm(number(g[0]), 0)),
    (re.compile(r"\b(noon|midday)\b"), lambda g: "12:00"),
    (re.compile(r"\b(lunchtime|lunch time|for lunch|at lunch)\b"), lambda g: "12:30"),
)


def _p_pair(g):
    return number(g[0]) + number(g[1])


_MAKE_IT = _TIME_PATTERNS[8][0]
_PEOPLE_PATTERNS = (
    (re.compile(r"\b" + _NUM + r" (?:adults|grown ups|grownups) and " + _NUM
                + r" (?:kids|children|child|teenagers|babies)\b"), _p_pair),
    (re.compile(r"\b(?:me|myself) and " + _NUM + r" (?:friends|others|colleagues|people|guests|"
                r"mates|kids|children)\b"), lambda g: number(g[0]) + 1),
    (re.compile(r"\b" + _NUM + r" " + _PEOPLE_NOUN + r"\b"), lambda g: number(g[0])),
    (re.compile(r"\b(?:table|party|group|booking|reservation) (?:for|of) " + _NUM + r"\b"),
     lambda g: number(g[0])),
    (re.compile(r"\bfor " + _NUM + r"\b(?! ?(?:pm|am|o'clock|oclock|h\b|:|thirty|fifteen))"),
     lambda g: number(g[0])),
    (re.compile(r"\b(?:a dozen|dozen)\b"), lambda g: 12),
    (re.compile(r"\b(?:me and my|myself and my) (?:wife|husband|partner|girlfriend|boyfriend|"
                r"friend|mum|mom|dad|son|daughter|colleague|fiance|fiancee|date)\b|"
                r"\b(?:a couple|the two of us|two of us|the pair of us)\b"), lambda g: 2),
    (re.compile(r"\b(?:just me|only me|just myself|on my own|by myself|table for one)\b"),
     lambda g: 1),
)
_BARE_NUMBER = re.compile(r"\b" + _NUM + r"\b")
_ONE_AS_PRONOUN = re.compile(r"\b(?:another|that|this|the|other|next|which|any|different|"
                             r"new|one) one\b|\bone (?:of|more|else)\b")
_NEG = (r"(?:not|no|but|except|other than|don't want|dont want|do not want|instead of|"
        r"rather not|rather not have|nothing|never|don't like|dont like|hate|without|avoid)")
_TOO_TYPOS = r"to|oo|tooo|ttoo|oto|tpo|tio|yoo|roo|toi"      # "nothing oo pricey" is a no
_NEG_BEFORE = re.compile(r"\b" + _NEG + r"(?: (?:too|so|very|really|any|an|a|the|more|want|"
                         r"have|eat|some|of|at|in|go to|food|overly|" + _TOO_TYPOS
                         + r")){0,2} $")
_BYE = re.compile(r"\b(?:bye|goodbye|that's all|that is all|thats all|nothing else)\b")
_FANCY_VERB = re.compile(r"\b(?:i|we|you|really|do you|would you|i'd|we'd|kinda|kind of) "
                         r"(?:fancy|feel like)\b")


class Understanding:
    """Compiled lexicon + catalogue names: ``parse(text, last_sys) -> acts``."""

    def __init__(self, lexicon: dict, catalogue: Catalogue):
        self.lexicon, self.cat = lexicon, catalogue
        self.values = {s: self._value_entries(s) for s in CONSTRAINTS}
        self.unknown = {s: [(w, re.compile(r"\b" + re.escape(w) + r"\b"))
                            for w in lexicon.get("unknown", {}).get(s, [])] for s in CONSTRAINTS}
        self.generic_unknown = re.compile(r"\b([a-z]{4,}) (?:food|cuisine|restaurant|place)\b")
        fine = r"(?: is| would be| will do)?(?: fine| ok| okay| good)?"

        def words(key, suffix=""):
            return re.compile(r"\b(?:" + "|".join(lexicon[key]) + r")" + suffix + r"\b")
        self.dontcare_slot = {s: words(f"dontcare_{s}", fine) for s in CONSTRAINTS}
        self.dontcare = words("dontcare", fine)
        self.request = {r: words(f"request_{r}") for r in REQUESTABLE}
        self.acts = {k: words(k) for k in ("affirm", "negate", "done", "reqalts", "nobook")}
        self.names = self._name_entries()
        self.common = set(lexicon.get("common", []))
        values = {w for slot in CONSTRAINTS for c, syn in lexicon["values"][slot].items()
                  for phrase in [c, *syn] for w in phrase.split()}
        self.speller = Speller(self._vocabulary(), protected=self.common, values=values)
        self._memo: dict = {}

    def _value_entries(self, slot):
        entries = []
        for canonical, synonyms in self.lexicon["values"][slot].items():
            for phrase, conf in [(canonical, 0.95)] + [(s, 0.85) for s in synonyms]:
                phrase = normalise(phrase).strip()
                entries.append((phrase, re.compile(r"(?<![a-z])" + re.escape(phrase)
                                                   + r"(?![a-z])"), canonical, conf))
        return entries

    def _name_entries(self):
        """(phrase, regex, restaurant, confidence): full names, names without "the", and a
        word that only one name has and that is no common or slot word ("blanc", "jade")."""
        out, seen = [], {}
        value_words = {w for s in CONSTRAINTS for p, *_ in self.values[s] for w in p.split()}
        for i, name in enumerate(self.cat.names):
            full = normalise(name).strip()
            forms = [full] + ([full[4:]] if full.startswith("the ") and len(full.split()) >= 3
                              else [])
            out += [(f, 0.95, i) for f in forms]
            for w in set(full.split()) - {"the"}:
                seen.setdefault(w, set()).add(i)
        common = set(self.lexicon.get("common", []))
        for w, owners in seen.items():
            if len(owners) == 1 and len(w) >= 4 and w not in common | value_words \
                    and not any(w == f for f, _, _ in out):
                out.append((w, 0.85, next(iter(owners))))
        out = [(f, re.compile(r"(?<![a-z])" + re.escape(f) + r"(?![a-z])"), i, c)
               for f, c, i in out]
        return sorted(out, key=lambda e: (-len(e[0]), -e[3]))

    def _vocabulary(self):
        words = []
        for s in CONSTRAINTS:
            for phrase, *_ in self.values[s]:
                words += phrase.split()
            words += [w for w, _ in self.unknown[s]]
        for phrase, *_ in self.names:
            words += [w for w in phrase.split() if w != "the"]
        words += list(_NUMBER_WORDS) + self.lexicon.get("keywords", [])
        for key, value in self.lexicon.items():      # the words of every pattern
            if isinstance(value, list) and key not in ("common", "keywords"):
                words += re.findall(r"[a-z]{4,}", " ".join(value))
        words += re.findall(r"[a-z]{4,}", _NEG + _PEOPLE_NOUN + " ".join(
            p.pattern for p, _ in _TIME_PATTERNS + _PEOPLE_PATTERNS))
        return [w for w in words if w.isalpha()]

    # ------------------------------------------------------------------------------------------
    def parse(self, text: str, last_sys: SystemAct | None = None) -> list[tuple]:
        """One user turn -> [(act, slot, value, conf), ...]. ``last_sys`` gives context: a bare
        number answers "how many people?" / "what time?", "any" answers the slot just asked
        (or the slot a "no match" named: "sorry, no uspvale restaurant" - "I don't mind")."""
        asked = last_sys.slot if last_sys is not None and last_sys.action < N_ACTIONS \
            and ACTIONS[last_sys.action].startswith(("request_", "reject_", "nomatch")) else None
        offer = last_sys is not None and last_sys.action == A_OFFER
        key = (text[:READ_CHARS], asked, offer)
        hit = self._memo.get(key)          # a history re-reads the same turns on every reply
        if hit is None:
            if len(self._memo) >= 4096:
                self._memo.clear()
            hit = self._memo[key] = tuple(self._parse(text, asked, offer))
        return list(hit)

    def typos(self, text: str) -> tuple[int, int]:
        """(words the spelling corrected, words of three or more letters) in one user turn:
        the tracker's estimate of how carefully this user types."""
        t, fixed = self._spelled(text)
        words = [w for w in t.split() if len(w) >= 3 and w.isalpha()]
        return sum(w in fixed for w in words), len(words)

    def _spelled(self, text: str) -> tuple[str, dict]:
        """The normalised, spelling-corrected turn and its corrected words (read-only), once
        per turn: ``parse`` and ``typos`` both need it."""
        key = ("spelled", text[:READ_CHARS])
        hit = self._memo.get(key)          # a history re-reads the same turns on every reply
        if hit is None:
            if len(self._memo) >= 4096:
                self._memo.clear()
            hit = self._memo[key] = self.speller.correct_text(normalise(text))
        return hit

    def _parse(self, text: str, asked, offer: bool) -> list[tuple]:
        t, fixed = self._spelled(text)
        acts: list[tuple] = []
        rest = self._times_and_people(t, asked, acts, fixed)
        rest = self._names(rest, acts, fixed, text)
        rest = self._constraints(rest, fixed, asked, acts)
        for r in REQUESTABLE:
            if self.request[r].search(rest):
                acts.append(("request", r, None, 1.0))
        return self._speech_acts(rest, acts, offer)

    def _times_and_people(self, t: str, asked, acts: list, fixed: dict) -> str:
        """Times and party sizes; a reading that rests on a corrected word ("fuor people")
        takes that word's lower confidence."""
        def conf(text, c=0.95, slot=None, value=None):
            if slot and (not self.cat.plausible(slot, value) or _MALFORMED.search(text)):
                c = IMPLAUSIBLE       # "18:39", "19pm", "44 people": a slip, most likely
            return min([c] + [fixed[w] for w in text.split() if w in fixed])
        found = set()
        for pat, fn in _TIME_PATTERNS:
            if pat is _MAKE_IT and asked == "people":     # "make it 10" answers "how many?"
                continue
            m = pat.search(t)
            value = fn(m.groups()) if m else None
            if value:
                acts.append(("inform", "time", value, conf(m.group(0), 0.95, "time", value)))
                found.add("time")
                t = t[:m.start()] + " " + t[m.end():]
                break
        for pat, fn in _PEOPLE_PATTERNS:
            m = pat.search(t)
            if m and 1 <= fn(m.groups()) <= 99:
                n = str(fn(m.groups()))
                acts.append(("inform", "people", n, conf(m.group(0), 0.95, "people", n)))
                found.add("people")
                t = t[:m.start()] + " " + t[m.end():]
                break
        if asked in BOOKING and asked not in found:
            m = _BARE_NUMBER.search(_ONE_AS_PRONOUN.sub(" ", t))    # "another one" is no 1
            if m:
                n = number(m.group(1))
                value = (str(n) if 1 <= n <= 99 else None) if asked == "people" else hhmm(n, 0)
                if value:
                    acts.append(("inform", asked, value, conf(m.group(0), 0.8, asked, value)))
        return t

    def _names(self, t: str, acts: list, fixed: dict, typed: str = "") -> str:
        named = set()
        for phrase, pat, i, conf in self.names:
            if phrase not in t or i in named:
                continue
            m = pat.search(t)
            if m and " " not in phrase and phrase in fixed and not _swapped(phrase, typed):
                continue        # "van I agve the phone": a corrected word is no name on its own,
                                # unless two letters were only swapped ("agvae": Agave)
            if m:
                neg = _NEG_BEFORE.search(t[:m.start()])
                acts.append(("reject_name" if neg else "name", None, i, conf))
                named.add(i)
                t = t[:m.start()] + " | " + t[m.end():]
        return t

    def _constraints(self, t: str, fixed: dict, asked, acts: list) -> str:
        t = _FANCY_VERB.sub(" ", t)          # "I fancy french": fancy is no price
        t = self.acts["nobook"].sub(lambda m: (acts.append(("nobook", None, None, 1.0)), " | ")[1],
                                    t)
        for slot in CONSTRAINTS:
            best, excluded = None, []
            for start, canonical, c in self._value_matches(slot, t, fixed):
                if _NEG_BEFORE.search(t[:start]):
                    excluded.append((canonical, c))
                elif best is None or start > best[0] or (start == best[0] and c > best[2]):
                    best = (start, canonical, c)
            for canonical, c in excluded:
                if best is None or best[1] != canonical:
                    acts.append(("exclude", slot, canonical, c))
            if best is None:
                best = self._unknown_value(slot, t)
            if best is not None:
                acts.append(("inform", slot, best[1], best[2]))
            elif not excluded and self.dontcare_slot[slot].search(t):
                acts.append(("inform", slot, DONTCARE, 0.95))
                t = self.dontcare_slot[slot].sub(" ", t)
            elif slot == asked and not excluded and self.dontcare.search(t):
                acts.append(("inform", slot, DONTCARE, 0.8))
        return self.dontcare.sub(" ", t)

    def _value_matches(self, slot: str, t: str, fixed: dict) -> list[tuple]:
        """(start, canonical, confidence) of the slot's value phrases in ``t``; a phrase inside
        a longer one ("thai" in "pad thai") is not read twice."""
        found = []
        for phrase, pat, canonical, conf in self.values[slot]:
            if phrase not in t:      # most phrases are absent: skip their regex
                continue
            for m in pat.finditer(t):
                c = min([conf] + [fixed[w] for w in phrase.split() if w in fixed])
                found.append((m.start(), m.end(), canonical, c))
        found.sort(key=lambda f: f[0] - f[1])          # longest first
        kept = []
        for a, b, canonical, c in found:
            if all(b <= x or a >= y for x, y, *_ in kept):
                kept.append((a, b, canonical, c))
        return [(a, canonical, c) for a, _, canonical, c in kept]

    def _unknown_value(self, slot: str, t: str):
        for w, pat in self.unknown[slot]:
            m = pat.search(t) if w in t else None
            if m and not _NEG_BEFORE.search(t[:m.start()]):
                return (m.start(), w, 0.9)
        if slot == "cuisine":
            for m in self.generic_unknown.finditer(t):
                w = m.group(1)
                if w not in self.common and w not in self.speller.known \
                        and not _NEG_BEFORE.search(t[:m.start()]):
                    return self._unfamiliar(m.start(), w)
        return None

    def _unfamiliar(self, start: int, w: str):
        """An unfamiliar word before "food"/"restaurant": a typo of a common word ("qant food"
        is "want food": nothing), else the one cuisine word within two edits ("ipzaz" -> pizza,
        a fuzzy match, confidence 0.5), else an unknown cuisine the system cannot vouch for
        (0.6; the lexicon's unknown values, "ethiopian", keep 0.9)."""
        if any(osa_distance(w, c, 2) <= 1 for c in self.common if abs(len(c) - len(w)) <= 1):
            return None
        near = {canonical for phrase, _, canonical, _ in self.values["cuisine"]
                if " " not in phrase and len(phrase) >= 4 and osa_distance(w, phrase, 3) <= 2}
        near |= {u for u, _ in self.unknown["cuisine"]
                 if " " not in u and osa_distance(w, u, 3) <= 2}
        if len(near) == 1:
            return (start, near.pop(), 0.5)
        return (start, w, 0.6) if not near else None

    def _speech_acts(self, rest: str, acts: list, offer: bool = False) -> list:
        """Yes/no/bye; after an offer, "no thanks" turns the offer down (it is no goodbye)."""
        if self.acts["reqalts"].search(rest):
            acts.append(("reqalts", None, None, 1.0))
            rest = self.acts["reqalts"].sub(" ", rest)
        content = any(a[0] != "nobook" for a in acts)
        done = bool(self.acts["done"].search(rest)) or any(a[0] == "nobook" for a in acts) \
            and not content
        if done and (offer and self.acts["negate"].search(rest)
                     or self.acts["affirm"].search(rest)) and not _BYE.search(rest):
            done = False           # "yes thanks" is a yes, "no thanks" to an offer a no
        if self.acts["negate"].search(rest) and not (done and not content):
            acts.append(("negate", None, None, 1.0))
        elif self.acts["affirm"].search(rest) and not (done and not content):
            acts.append(("affirm", None, None, 1.0))
        if done and not content:
            acts.append(("done", None, None, 1.0))
        return acts


def no_act() -> SystemAct:
    return SystemAct(A_NONE)


def _swapped(word: str, typed: str) -> bool:
    """Whether the user typed ``word`` with its letters only reordered ("agvae" for "agave")."""
    letters = sorted(word)
    return any(sorted(w) == letters for w in normalise(typed[:READ_CHARS]).split())
