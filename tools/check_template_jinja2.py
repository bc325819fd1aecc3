#!/usr/bin/env python3
"""Renders conversations with Python's Jinja2 configured as Hugging Face transformers
does (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, json.dumps tojson) and with
`pocket template`, and reports any difference. Exit 0: identical; 1: a difference;
77: jinja2 or the template is not available (the caller skips).

usage: check_template_jinja2.py POCKET_BIN TOKENIZER_CONFIG_JSON
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    sys.exit(77)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather; métrique",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                         "required": ["city"]}}}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}

CASES = [
    ([{"role": "user", "content": "Hello!"}], None, {}),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], None, {}),
    ([{"role": "user", "content": "Hi"}], None, {"enable_thinking": False}),
    ([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
      {"role": "user", "content": "and 3+3?"}], None, {}),
    ([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "reasoning_content": "add them"}],
     None, {"add_generation_prompt": False}),
    ([{"role": "user", "content": "Weather in Paris?"}], TOOLS, {}),
    ([{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "", "tool_calls": [CALL]},
      {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"}], TOOLS, {}),
    ([{"role": "user", "content": "Two cities"},
      {"role": "assistant", "content": "Checking.", "tool_calls": [CALL, CALL]},
      {"role": "tool", "content": "a"}, {"role": "tool", "content": "b"}], TOOLS, {"enable_thinking": False}),
    ([{"role": "user", "content": "  spaces and ünïcode 日本語  "}], None, {}),
]


def render_jinja2(source, messages, tools, kwargs):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, ensure_ascii=ensure_ascii, indent=indent)
    env.globals["raise_exception"] = raise_exception
    ctx = {"messages": messages, "tools": tools, "add_generation_prompt": kwargs.get("add_generation_prompt", True),
           "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    if "enable_thinking" in kwargs:
        ctx["enable_thinking"] = kwargs["enable_thinking"]
    return env.from_string(source).render(**ctx)


def main():
    if len(sys.argv) != 3 or not os.path.exists(sys.argv[2]):
        sys.exit(77)
    pocket, config = sys.argv[1], sys.argv[2]
    source = json.load(open(config, encoding="utf-8"))["chat_template"]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (messages, tools, kwargs) in enumerate(CASES):
            expected = render_jinja2(source, messages, tools, kwargs)
            conv = os.path.join(tmp, "conv.json")
            # Pocket takes OpenAI-style tool-call arguments (JSON strings).
            openai_messages = json.loads(json.dumps(messages))
            for m in openai_messages:
                for c in m.get("tool_calls", []):
                    c["function"]["arguments"] = json.dumps(c["function"]["arguments"])
            json.dump(openai_messages, open(conv, "w", encoding="utf-8"), ensure_ascii=False)
            cmd = [pocket, "template", "-m", config, "--messages", conv]
            if tools:
                tpath = os.path.join(tmp, "tools.json")
                json.dump(tools, open(tpath, "w", encoding="utf-8"), ensure_ascii=False)
                cmd += ["--tools", tpath]
            if "enable_thinking" in kwargs:
                cmd += ["--kwargs", json.dumps({"enable_thinking": kwargs["enable_thinking"]})]
            if kwargs.get("add_generation_prompt", True):
                cmd += ["--add-generation-prompt"]
            got = subprocess.run(cmd, capture_output=True).stdout.decode("utf-8")
            if got != expected:
                failures += 1
                print(f"case {i}: differs\n--- jinja2\n{expected!r}\n--- pocket\n{got!r}")
    print(f"{len(CASES) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


main()
