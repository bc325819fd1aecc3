"""Synthetic chat data for the Pocket demo model (tasks, phrasings, canonical answers).

Every example is (messages, tools, enable_thinking, target) where `target` is the assistant turn
to learn: {"reasoning": str, "content": str, "tool_calls": [...] or None}. The prompt is the
conversation rendered with add_generation_prompt=True; the completion is what the real template
renders for the target assistant message after that prompt (see render_example).
"""
import json
import random
import string

# The data version the generator produces. Version 3 (the default) shows the working of add /
# sub / mul in the visible answer when thinking is off, spells subtraction with explicit
# borrows and multiplication one fact per step, counts one letter with a running count, and
# weights the mix towards the tasks the version-2 model got wrong. `set_version(2)` gives the
# version-2 data exactly (same random draws), to reproduce the earlier training phases.
# Version 4 states the deciding digit fact of a comparison ("and 4 > 1"), repeats the wanted
# letter at each step of a one-letter count ("H vs R no 0"), sorts letters by inserting one at a
# time, and shows the working of comparisons and one-letter counts in the visible answer when
# thinking is off. Its vocabulary also has every word of WORDS as one token (see
# vocab_extra_tokens), so copying a word is one step, as copying a letter is.
# Versions 5 and 6 keep version 4's formats and change only the mix (MIX_V5, MIX_V6); version 6
# also asks "is a greater than a?" more often (see gen_gt).
DATA_VERSION = 4
VERSIONS = (2, 3, 4, 5, 6)


def set_version(v):
    global DATA_VERSION, MIX
    assert v in VERSIONS, f"data version {v}: only {VERSIONS} exist"
    DATA_VERSION = v
    MIX = {2: MIX_V2, 3: MIX_V3, 4: MIX_V4, 5: MIX_V5, 6: MIX_V6}[v]

# ---------------------------------------------------------------------------------------------
# Arithmetic


def _add_work(a, b):
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry, digits = [], 0, []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        steps.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={s}")
        carry, d = divmod(s, 10)
        digits.append(d)
    if carry:
        steps.append("carry 1")
    return "; ".join(steps)


def _sub_work(a, b):
    if DATA_VERSION >= 3:
        return _sub_work_v3(a, b)
    da, db = str(a)[::-1], str(b)[::-1]
    steps, borrow = [], 0
    for i in range(len(da)):
        x = int(da[i]) - borrow
        y = int(db[i]) if i < len(db) else 0
        if x < y:
            steps.append(f"{x}+10-{y}={x + 10 - y} borrow 1")
            borrow = 1
        else:
            steps.append(f"{x}-{y}={x - y}")
            borrow = 0
    return "; ".join(steps)


def _sub_work_v3(a, b):
    # Borrowing pays back into the next column of the subtrahend (y + 1), so every step is one
    # comparison and one fact (1x - y with y <= 10) and no column ever goes negative.
    da, db = str(a)[::-1], str(b)[::-1]
    steps, borrow = [], 0
    for i in range(len(da)):
        x = int(da[i])
        y = int(db[i]) if i < len(db) else 0
        pre = ""
        if borrow:
            pre = f"{y}+1={y + 1}, "
            y += 1
        if x < y:
            steps.append(pre + f"{x}<{y}: 1{x}-{y}={10 + x - y} borrow 1")
            borrow = 1
        else:
            steps.append(pre + f"{x}-{y}={x - y}")
            borrow = 0
    return "; ".join(steps)


def _mul_work(a, b):
    t, u = divmod(a, 10)
    s1 = u * b
    c1, d1 = divmod(s1, 10)
    s2 = t * b + c1
    if DATA_VERSION >= 3:  # one fact per step: the tens product, then the carry added to it
        return f"{u}*{b}={s1}; {t}*{b}={t * b}" + (f"; {t * b}+{c1}={s2}" if c1 else "")
    return f"{u}*{b}={s1}; {t}*{b}" + (f"+{c1}" if c1 else "") + f"={s2}"


ADD_Q = ["What is {a} + {b}?", "What is {a} plus {b}?", "Compute {a} + {b}.", "{a} + {b} = ?",
         "Calculate {a} + {b}.", "Add {a} and {b}.", "What's the sum of {a} and {b}?",
         "Please add {a} and {b}.", "How much is {a} + {b}?", "{a}+{b}"]
SUB_Q = ["What is {a} - {b}?", "What is {a} minus {b}?", "Compute {a} - {b}.", "{a} - {b} = ?",
         "Calculate {a} - {b}.", "Subtract {b} from {a}.", "What's {a} minus {b}?",
         "How much is {a} - {b}?", "{a}-{b}", "What is the difference between {a} and {b}?"]
MUL_Q = ["What is {a} * {b}?", "What is {a} times {b}?", "Compute {a} * {b}.", "{a} * {b} = ?",
         "Multiply {a} by {b}.", "Calculate {a} times {b}.", "What's the product of {a} and {b}?",
         "How much is {a} * {b}?", "{a}*{b}", "What is {a} multiplied by {b}?"]


def _num(rng, hard=True):
    k = rng.choices([1, 2, 3], weights=[1, 3, 8] if hard else [3, 3, 2])[0]
    return rng.randint(0 if k == 1 else 10 ** (k - 1), 10 ** k - 1)


def gen_add(rng, think):
    a, b = _num(rng), _num(rng)
    q = rng.choice(ADD_Q).format(a=a, b=b)
    ans = f"{a} + {b} = {a + b}"
    return q, ans, f"Add digit by digit from the right: {_add_work(a, b)}. So {a} + {b} = {a + b}.", a + b


def gen_sub(rng, think):
    a, b = _num(rng), _num(rng)
    if a < b:
        a, b = b, a
    q = rng.choice(SUB_Q).format(a=a, b=b)
    ans = f"{a} - {b} = {a - b}"
    return q, ans, f"Subtract digit by digit from the right: {_sub_work(a, b)}. So {a} - {b} = {a - b}.", a - b


def gen_mul(rng, think):
    a, b = rng.randint(10, 99), rng.randint(2, 9)
    q = rng.choice(MUL_Q).format(a=a, b=b)
    ans = f"{a} * {b} = {a * b}"
    return q, ans, f"Multiply digit by digit from the right: {_mul_work(a, b)}. So {a} * {b} = {a * b}.", a * b


def _rel(x, y):
    return f"{x} {'<' if x < y else '>'} {y}"


def _cmp_work(a, b):
    sa, sb = str(a), str(b)
    v4 = DATA_VERSION >= 4  # the fact that decides, written out: one comparison of two digits
    if len(sa) != len(sb):
        return f"{a} has {len(sa)} digits and {b} has {len(sb)} digits" + \
            (f", and {_rel(len(sa), len(sb))}" if v4 else "")
    for x, y in zip(sa, sb):
        if x != y:
            return f"both have {len(sa)} digits; the first different digits are {x} and {y}" + \
                (f", and {_rel(x, y)}" if v4 else "")
    return "they are the same number"


LARGER_Q = ["Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?",
            "Which is greater, {a} or {b}?", "What is the larger of {a} and {b}?",
            "Between {a} and {b}, which is larger?", "max({a}, {b}) = ?"]
GT_Q = ["Is {a} greater than {b}?", "Is {a} larger than {b}?", "Is {a} bigger than {b}?",
        "Is {a} > {b}?", "Is {a} more than {b}?"]


def gen_larger(rng, think):
    a, b = _num(rng, False), _num(rng, False)
    while a == b:
        b = _num(rng, False)
    if rng.random() < 0.4:  # close numbers: same length, shared prefix
        b = int(str(a)[:-1] + str(rng.randint(0, 9))) if a >= 10 else rng.randint(0, 9)
        if a == b:
            b = a + 1
    q = rng.choice(LARGER_Q).format(a=a, b=b)
    m = max(a, b)
    return q, f"{m}", f"Compare {a} and {b}: {_cmp_work(a, b)}. So {m} is larger.", m


def gen_gt(rng, think):
    a, b = _num(rng, False), _num(rng, False)
    if rng.random() < 0.4 and a >= 10:
        b = int(str(a)[:-1] + str(rng.randint(0, 9)))
    # Equal numbers: ~9 % of the questions up to version 5 (5 % here, 4 % from the close pairs).
    # With thinking on, the models trained on those wrote "the first different digits are 2 and
    # 2" for every equal pair of the test set, so version 6 asks it more often (~16 %; the same
    # random draws, a higher threshold).
    if rng.random() < (0.12 if DATA_VERSION >= 6 else 0.05):
        b = a
    q = rng.choice(GT_Q).format(a=a, b=b)
    if a > b:
        ans = f"Yes, {a} is greater than {b}."
    elif a < b:
        ans = f"No, {a} is less than {b}."
    else:
        ans = f"No, {a} is equal to {b}."
    return q, ans, f"Compare {a} and {b}: {_cmp_work(a, b)}.", a > b


# ---------------------------------------------------------------------------------------------
# Strings. Letter strings are upper-case and chosen so that every letter is its own token (the
# caller passes `single_char_ok`), which makes letter-level tasks learnable by a tiny model.

WORDS = ("apple bird book cat cloud cup dog door egg fish flag frog gold hat hill ice jam key "
         "lamp leaf lion map milk moon nest nut owl pen pig rain ring rose salt sand ship shoe "
         "sky snow star sun tea tree van wall wind wolf yard box car bus fox").split()

REV_Q = ["Reverse the string {s}.", "Reverse {s}.", "Write {s} backwards.", "What is {s} reversed?",
         "Spell {s} in reverse order."]
SORT_Q = ["Sort the letters of {s} alphabetically.", "Sort the letters in {s}.",
          "Arrange the letters of {s} in alphabetical order.", "Put the letters of {s} in order."]
CNTL_Q = ["How many letters are in {s}?", "Count the letters in {s}.", "How long is the string {s}?",
          "How many characters does {s} have?"]
CNTC_Q = ["How many times does {c} appear in {s}?", "Count the letter {c} in {s}.",
          "How many {c}s are in {s}?"]
CNTW_Q = ["How many words are in \"{s}\"?", "Count the words in \"{s}\".",
          "How many words does this sentence have: \"{s}\"?"]
RWORD_Q = ["Reverse the order of the words: {s}", "Reverse the word order in \"{s}\".",
           "Write these words in reverse order: {s}"]
SORTW_Q = ["Sort these words alphabetically: {s}", "Put these words in alphabetical order: {s}",
           "Sort alphabetically: {s}"]


def rand_letters(rng, ok, lo=3, hi=7, alphabet=string.ascii_uppercase):
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))
        if ok(s):
            return s


def spaced(s):
    return " ".join(s)


def gen_reverse(rng, ok):
    s = rand_letters(rng, lambda x: ok(x) and ok(x[::-1]))
    q = rng.choice(REV_Q).format(s=s)
    return q, s[::-1], f"The letters of {s} are {spaced(s)}. Reversed: {spaced(s[::-1])}."


def gen_sort_letters(rng, ok):
    s = rand_letters(rng, lambda x: ok(x) and ok("".join(sorted(x))))
    t = "".join(sorted(s))
    q = rng.choice(SORT_Q).format(s=s)
    if DATA_VERSION >= 4:  # insertion: each step names the next letter and the list with it in place
        steps = [f"{x}: {spaced(sorted(s[:i + 1]))}" for i, x in enumerate(s)]
        return q, t, f"Inserting the letters of {s} one at a time: {'; '.join(steps)}. " \
                     f"In alphabetical order: {spaced(t)}."
    return q, t, f"The letters of {s} are {spaced(s)}. In alphabetical order: {spaced(t)}."


def gen_count_letters(rng, ok):
    s = rand_letters(rng, ok, 2, 9)
    q = rng.choice(CNTL_Q).format(s=s)
    return q, f"{len(s)}", f"The letters of {s} are {spaced(s)}. That is {len(s)} letters."


def gen_count_char(rng, ok):
    alpha = "".join(rng.sample(string.ascii_uppercase, 3))
    s = rand_letters(rng, ok, 3, 8, alpha)
    c = rng.choice(s)
    q = rng.choice(CNTC_Q).format(s=s, c=c)
    n = s.count(c)
    if DATA_VERSION >= 4:  # the wanted letter next to each letter: the comparison is local
        run, k = [], 0
        for x in s:
            k += x == c
            run.append(f"{c} vs {x} {'yes' if x == c else 'no'} {k}")
        return q, f"{n}", f"Counting {c} in {spaced(s)}: {', '.join(run)}. So {c} appears {n} times."
    if DATA_VERSION >= 3:  # a running count: each step compares one letter and adds 0 or 1
        run, k = [], 0
        for x in s:
            k += x == c
            run.append(f"{x} {k}")
        return q, f"{n}", f"Counting {c} in {spaced(s)}: {', '.join(run)}. So {c} appears {n} times."
    return q, f"{n}", f"The letters of {s} are {spaced(s)}. {c} appears {n} times."


def gen_count_words(rng, ok):
    w = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
    s = " ".join(w)
    q = rng.choice(CNTW_Q).format(s=s)
    num = ", ".join(f"{i + 1} {x}" for i, x in enumerate(w))
    return q, f"{len(w)}", f"Numbering the words: {num}. That is {len(w)} words."


def gen_reverse_words(rng, ok):
    w = rng.sample(WORDS, rng.randint(2, 5))
    s = " ".join(w)
    q = rng.choice(RWORD_Q).format(s=s)
    return q, " ".join(w[::-1]), f"The words are {', '.join(w)}. From last to first: {', '.join(w[::-1])}."


def gen_sort_words(rng, ok):
    # distinct first letters keep the comparison to one letter per word
    by_first = {}
    for x in WORDS:
        by_first.setdefault(x[0], []).append(x)
    firsts = rng.sample(sorted(by_first), rng.randint(2, 5))
    w = [rng.choice(by_first[f]) for f in firsts]
    s = ", ".join(w)
    q = rng.choice(SORTW_Q).format(s=s)
    t = ", ".join(sorted(w))
    return q, t, f"First letters: {', '.join(x[0] for x in w)}. In alphabetical order: {t}."


# ---------------------------------------------------------------------------------------------
# Tools

CITIES = ["Paris", "London", "Berlin", "Tokyo", "Madrid", "Rome", "Vienna", "Oslo", "Cairo",
          "Lima", "Dublin", "Prague", "Sydney", "Toronto", "Chicago", "Boston", "Seoul", "Delhi",
          "Moscow", "Athens", "Lisbon", "Warsaw", "Zurich", "Miami", "Denver", "Dallas",
          "Houston", "Munich", "Milan", "Venice", "Geneva", "Brussels", "Amsterdam", "Stockholm",
          "Helsinki", "Budapest", "Istanbul", "Bangkok", "Singapore", "Manila"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "SEK", "INR"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]

TOOLS = {
    "get_weather": {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    "get_time": {"type": "function", "function": {
        "name": "get_time", "description": "Get the local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    "convert_currency": {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount between currencies",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
            "required": ["amount", "from", "to"]}}},
    "get_population": {"type": "function", "function": {
        "name": "get_population", "description": "Get the population of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
}

WEATHER_Q = ["What's the weather in {c}?", "What is the weather like in {c}?",
             "How is the weather in {c} today?", "Tell me the weather in {c}.",
             "Is it raining in {c}?", "weather in {c}", "Weather for {c}, please."]
TIME_Q = ["What time is it in {c}?", "What's the local time in {c}?", "Tell me the time in {c}.",
          "time in {c}", "Current time in {c}?"]
CONV_Q = ["Convert {a} {f} to {t}.", "How much is {a} {f} in {t}?", "What is {a} {f} in {t}?",
          "convert {a} {f} to {t}", "Change {a} {f} into {t}."]
POP_Q = ["What is the population of {c}?", "How many people live in {c}?",
         "Population of {c}?", "Tell me the population of {c}."]


def gen_tool(rng):
    """Returns (user_q, tool_name, args(dict), tool_result(str), final_answer, reasoning)."""
    kind = rng.choice(list(TOOLS))
    c = rng.choice(CITIES)
    if kind == "get_weather":
        t, cond = rng.randint(-5, 35), rng.choice(CONDITIONS)
        res = json.dumps({"city": c, "temperature": t, "condition": cond})
        return (rng.choice(WEATHER_Q).format(c=c), kind, {"city": c}, res,
                f"It is {cond} and {t} degrees in {c}.", f"The user wants the weather in {c}. I will call get_weather.")
    if kind == "get_time":
        hh, mm = rng.randint(0, 23), rng.randint(0, 59)
        res = json.dumps({"city": c, "time": f"{hh:02d}:{mm:02d}"})
        return (rng.choice(TIME_Q).format(c=c), kind, {"city": c}, res,
                f"It is {hh:02d}:{mm:02d} in {c}.", f"The user wants the time in {c}. I will call get_time.")
    if kind == "get_population":
        p = rng.randint(1, 20) * 100000 + rng.randint(0, 9) * 10000
        res = json.dumps({"city": c, "population": p})
        return (rng.choice(POP_Q).format(c=c), kind, {"city": c}, res,
                f"{c} has a population of {p}.", f"The user wants the population of {c}. I will call get_population.")
    a = rng.choice([rng.randint(1, 999), rng.randint(1, 99) * 10])
    f, t = rng.sample(CURRENCIES, 2)
    r = rng.randint(1, 9999)
    res = json.dumps({"amount": r, "currency": t})
    return (rng.choice(CONV_Q).format(a=a, f=f, t=t), kind, {"amount": a, "from": f, "to": t}, res,
            f"{a} {f} is {r} {t}.", f"The user wants to convert {a} {f} to {t}. I will call convert_currency.")


JSON_SYS = ["Always reply with a JSON object of the form {\"answer\": ...} and nothing else.",
            "Respond only in JSON: {\"answer\": <value>}.",
            "You are a JSON API. Output exactly one JSON object with the key \"answer\".",
            "Answer in JSON format with a single key \"answer\"."]
PLAIN_SYS = ["You are a helpful assistant.", "You are Pocket, a small helpful assistant.",
             "Be concise.", "You are a math and text helper. Answer briefly."]

ARITH = {"add": gen_add, "sub": gen_sub, "mul": gen_mul, "larger": gen_larger, "gt": gen_gt}
STRS = {"reverse": gen_reverse, "sort_letters": gen_sort_letters, "count_letters": gen_count_letters,
        "count_char": gen_count_char, "count_words": gen_count_words,
        "reverse_words": gen_reverse_words, "sort_words": gen_sort_words}


def tool_list(rng, need=None):
    # 1-2 tools: every tool schema adds ~60 prompt tokens (the template's tool preamble is ~250),
    # which cost training compute for no answer tokens
    names = list(TOOLS)
    k = rng.choice([1, 1, 2])
    sel = rng.sample(names, k)
    if need and need not in sel:
        sel[rng.randrange(len(sel))] = need
    return [TOOLS[n] for n in sel]


def make_example(rng, kind, ok, think=None):
    """Returns a dict: messages, tools, think, target, answer (canonical check data), kind."""
    if think is None:
        think = rng.random() < 0.5
    tools = None
    msgs = []
    if kind in ARITH or kind in STRS:
        if kind in ARITH:
            q, ans, work, val = ARITH[kind](rng, think)
            jval = val
        else:
            q, ans, work = STRS[kind](rng, ok)
            jval = int(ans) if ans.isdigit() else ans
        r = rng.random()
        if r < 0.08:
            msgs.append({"role": "system", "content": rng.choice(PLAIN_SYS)})
        elif r < 0.09:
            tools = tool_list(rng)  # tools offered but not needed
        msgs.append({"role": "user", "content": q})
        if DATA_VERSION >= 3 and not think and kind in ("add", "sub", "mul"):
            # A tiny model cannot write the most significant digit first without working:
            # with thinking off the visible answer carries the same working, ending in the result.
            ans = work
        elif DATA_VERSION >= 4 and not think and kind in ("larger", "count_char", "sort_letters"):
            ans = work  # these workings end in a sentence with the result
        elif DATA_VERSION >= 4 and not think and kind == "gt":
            ans = f"{work} {ans}"
        return dict(kind=kind, messages=msgs, tools=tools, think=think,
                    target={"reasoning": work if think else "", "content": ans}, answer=ans)
    if kind == "json":
        sub = rng.choice(list(ARITH) + list(STRS))
        if sub in ARITH:
            q, ans, work, val = ARITH[sub](rng, think)
        else:
            q, ans, work = STRS[sub](rng, ok)
            val = int(ans) if ans.isdigit() else ans
        content = json.dumps({"answer": val})
        msgs = [{"role": "system", "content": rng.choice(JSON_SYS)}, {"role": "user", "content": q}]
        return dict(kind="json", messages=msgs, tools=None, think=think,
                    target={"reasoning": work if think else "", "content": content}, answer=content)
    if kind in ("tool_call", "tool_answer"):
        q, name, args, res, final, why = gen_tool(rng)
        tools = tool_list(rng, need=name)
        msgs = [{"role": "user", "content": q}]
        call = {"type": "function", "function": {"name": name, "arguments": args}}
        if kind == "tool_call":
            return dict(kind=kind, messages=msgs, tools=tools, think=think,
                        target={"reasoning": why if think else "", "content": "", "tool_calls": [call]},
                        answer={"name": name, "arguments": args})
        msgs += [{"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "content": res}]
        return dict(kind=kind, messages=msgs, tools=tools, think=think,
                    target={"reasoning": "The tool returned the answer." if think else "", "content": final},
                    answer=final)
    raise ValueError(kind)


# DATA_VERSION (top of the file) is part of the cached data file name: add a version when the
# generator changes.
MIX_V2 = {"add": 14, "sub": 12, "mul": 10, "larger": 5, "gt": 5,
          "reverse": 5, "sort_letters": 5, "count_letters": 4, "count_char": 4, "count_words": 4,
          "reverse_words": 4, "sort_words": 4, "json": 6, "tool_call": 4, "tool_answer": 2}
# Version 3: more of what the version-2 model got wrong (arithmetic facts, one-letter counts,
# sorting, word lists), fewer tool prompts (each is ~400 tokens of template preamble, and tool use
# was already at 82-92 %).
MIX_V3 = {"add": 14, "sub": 14, "mul": 12, "larger": 4, "gt": 4,
          "reverse": 4, "sort_letters": 6, "count_letters": 3, "count_char": 5, "count_words": 4,
          "reverse_words": 6, "sort_words": 6, "json": 6, "tool_call": 3, "tool_answer": 2}
# Version 4: the changed kinds (comparisons, one-letter counts, letter sorting) and the word
# tasks (now one token per word) weigh more; add/sub/mul (93-100 %) keep enough to stay learned.
MIX_V4 = {"add": 8, "sub": 12, "mul": 8, "larger": 6, "gt": 6,
          "reverse": 3, "sort_letters": 8, "count_letters": 3, "count_char": 8, "count_words": 5,
          "reverse_words": 6, "sort_words": 6, "json": 7, "tool_call": 2, "tool_answer": 2}
# Version 5: the version-4 formats and vocabulary, a mix for a from-scratch run inside two hours.
# Such runs (models/README.md, Status) learn arithmetic (96.75 %) and tool calls (97.5 %) but not the
# letter- and word-level copying of the string kinds (77 %; reverse 65 %, sort_words 55 %). In the
# version-4 data the weakest kinds had few of the answer tokens the loss is taken on: reverse 1.4 %,
# sort_words 3.1 %, reverse_words 2.4 %; arithmetic 56 %. Here (same per-answer lengths): 4.2, 6.0
# and 4.0 %, arithmetic 46 %, all string kinds 46 % (35 % before).
MIX_V5 = {"add": 7, "sub": 10, "mul": 8, "larger": 3, "gt": 5,
          "reverse": 9, "sort_letters": 10, "count_letters": 4, "count_char": 9, "count_words": 4,
          "reverse_words": 10, "sort_words": 12, "json": 6, "tool_call": 2, "tool_answer": 2}
# Version 6: between versions 4 and 5, for a from-scratch run inside two hours. On version 5 such a
# run learned the string kinds (96.8 %) but arithmetic only to 87.5 % (93.6 % after a low-lr phase
# on version 4); on version 4, arithmetic 96.75 % and strings 77.3 %. Here arithmetic is ~46 % of
# the answer characters (v4 50 %, v5 39 %) and the string kinds ~45 % (v4 40 %, v5 52 %): weight
# moves from string kinds a version-5 run got right every time (reverse, sort_letters, count_char,
# count_words) to sub, add and larger; sort_words and reverse_words keep their version-5 share.
MIX_V6 = {"add": 8, "sub": 12, "mul": 7, "larger": 5, "gt": 5,
          "reverse": 7, "sort_letters": 8, "count_letters": 4, "count_char": 7, "count_words": 3,
          "reverse_words": 9, "sort_words": 12, "json": 6, "tool_call": 2, "tool_answer": 2}
MIX = MIX_V4


def vocab_extra_tokens():
    """Tokens the version-4 vocabulary adds to the first --n-regular Qwen3 tokens: each word of
    WORDS with and without its leading space (in the byte-level alphabet, space is 'Ġ')."""
    return [p + w for w in WORDS for p in ("\u0120", "")]


def sample_kind(rng, mix=None):
    mix = mix or MIX
    ks = list(mix)
    return rng.choices(ks, weights=[mix[k] for k in ks])[0]


# ---------------------------------------------------------------------------------------------
# Rendering with the real chat template (Jinja2, configured like Hugging Face transformers)

_ENV = None


def template_env(template_text):
    global _ENV
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template_text)


def render(tmpl, messages, tools, think, add_generation_prompt):
    kw = dict(messages=messages, add_generation_prompt=add_generation_prompt)
    if tools:
        kw["tools"] = tools
    if not think:
        kw["enable_thinking"] = False
    return tmpl.render(**kw)


def render_example(tmpl, ex):
    """(prompt_text, completion_text). completion ends with <|im_end|>."""
    prompt = render(tmpl, ex["messages"], ex["tools"], ex["think"], True)
    t = ex["target"]
    am = {"role": "assistant", "content": t["content"], "reasoning_content": t["reasoning"]}
    if t.get("tool_calls"):
        am["tool_calls"] = t["tool_calls"]
    full = render(tmpl, ex["messages"] + [am], ex["tools"], ex["think"], False)
    assert full.startswith(prompt), (prompt, full)
    comp = full[len(prompt):]
    assert comp.endswith("<|im_end|>\n")
    return prompt, comp[:-1]
