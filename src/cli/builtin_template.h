// A Qwen3.5-format chat template written by Pocket from the format description in
// spec/qwen35.md §7 (roles, thinking blocks, XML tool calls, merged tool results,
// the thinking switch on the generation prompt). `make-model` writes it into the
// random-weight models it generates when no template is given. Real model files
// carry their own template, which Pocket always prefers. The tool instructions are
// Pocket's own wording, so renderings with tools differ from the official template.
#pragma once

namespace pocket::cli {

inline constexpr const char* kBuiltinQwen35Template = R"JINJA({%- macro render_content(content) -%}
{%- if content is string -%}{{- content -}}
{%- elif content is iterable and content is not mapping -%}
{%- for part in content -%}
{%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif part.type == 'video' or 'video' in part -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif 'text' in part -%}{{- part.text -}}
{%- else -%}{{- raise_exception('Unexpected content part.') -}}
{%- endif -%}
{%- endfor -%}
{%- elif content is none or content is undefined -%}
{%- else -%}{{- raise_exception('Unexpected content type.') -}}
{%- endif -%}
{%- endmacro -%}
{%- if not messages -%}{{- raise_exception('No messages provided.') -}}{%- endif -%}
{%- if tools and tools is iterable and tools is not mapping -%}
{{- '<|im_start|>system\n# Tools\n\nThese functions are available. Their signatures follow, one JSON object per line, inside <tools></tools>:\n<tools>' -}}
{%- for tool in tools -%}{{- '\n' -}}{{- tool | tojson -}}{%- endfor -%}
{{- '\n</tools>\n\nTo call a function, answer with one block per call in this form:\n<tool_call>\n<function=name>\n<parameter=argument_name>\nvalue\n</parameter>\n</function>\n</tool_call>\n\nWrite string values as they are; write numbers, booleans, objects and arrays as JSON.' -}}
{%- if messages[0].role == 'system' -%}
{%- set sys = render_content(messages[0].content) | trim -%}
{%- if sys -%}{{- '\n\n' + sys -}}{%- endif -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- elif messages[0].role == 'system' -%}
{{- '<|im_start|>system\n' + (render_content(messages[0].content) | trim) + '<|im_end|>\n' -}}
{%- endif -%}
{%- set ns = namespace(last_query=-1) -%}
{%- for message in messages[::-1] -%}
{%- set index = messages | length - 1 - loop.index0 -%}
{%- if ns.last_query == -1 and message.role == 'user' -%}
{%- set text = render_content(message.content) | trim -%}
{%- if not (text.startswith('<tool_response>') and text.endswith('</tool_response>')) -%}
{%- set ns.last_query = index -%}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- if ns.last_query < 0 -%}{{- raise_exception('No user query found in messages.') -}}{%- endif -%}
{%- for message in messages -%}
{%- set content = render_content(message.content) | trim -%}
{%- if message.role == 'system' -%}
{%- if not loop.first -%}{{- raise_exception('System message must be at the beginning.') -}}{%- endif -%}
{%- elif message.role == 'user' -%}
{{- '<|im_start|>user\n' + content + '<|im_end|>\n' -}}
{%- elif message.role == 'assistant' -%}
{%- set reasoning = '' -%}
{%- if message.reasoning_content is string -%}
{%- set reasoning = message.reasoning_content -%}
{%- elif '</think>' in content -%}
{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\n') -%}
{%- set content = content.split('</think>')[-1].lstrip('\n') -%}
{%- endif -%}
{%- set reasoning = reasoning | trim -%}
{%- if loop.index0 > ns.last_query -%}
{{- '<|im_start|>assistant\n<think>\n' + reasoning + '\n</think>\n\n' + content -}}
{%- else -%}
{{- '<|im_start|>assistant\n' + content -}}
{%- endif -%}
{%- if message.tool_calls and message.tool_calls is iterable and message.tool_calls is not mapping -%}
{%- for call in message.tool_calls -%}
{%- if call.function is defined -%}{%- set call = call.function -%}{%- endif -%}
{%- if loop.first -%}{%- if content -%}{{- '\n\n' -}}{%- endif -%}{%- else -%}{{- '\n' -}}{%- endif -%}
{{- '<tool_call>\n<function=' + call.name + '>\n' -}}
{%- if call.arguments is mapping -%}
{%- for name, value in call.arguments | items -%}
{{- '<parameter=' + name + '>\n' -}}
{%- if value is mapping or (value is iterable and value is not string) -%}{{- value | tojson -}}{%- else -%}{{- value | string -}}{%- endif -%}
{{- '\n</parameter>\n' -}}
{%- endfor -%}
{%- endif -%}
{{- '</function>\n</tool_call>' -}}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- elif message.role == 'tool' -%}
{%- if loop.first or loop.previtem.role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
{{- '\n<tool_response>\n' + content + '\n</tool_response>' -}}
{%- if loop.last or loop.nextitem.role != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
{%- else -%}
{{- raise_exception('Unexpected message role.') -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\n\n</think>\n\n' -}}{%- else -%}{{- '<think>\n' -}}{%- endif -%}
{%- endif -%})JINJA";

}  // namespace pocket::cli
