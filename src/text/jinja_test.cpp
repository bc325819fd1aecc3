// Unit tests of the Jinja interpreter, one group per feature. Expected outputs
// follow Python Jinja2 3.1 in the environment transformers uses
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// json.dumps-based tojson); they were cross-checked against Jinja2 3.1.6
// while writing them.
#include "text/jinja.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <thread>

namespace pocket::jinja {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& tpl, const json& ctx = json::object(),
                   const Options& options = {}) {
  return Template(tpl, options).render(ctx);
}

// The error text of parsing+rendering, or "no error: OUTPUT".
std::string error_of(const std::string& tpl, const json& ctx = json::object(),
                     const Options& options = {}) {
  try {
    return "no error: " + Template(tpl, options).render(ctx);
  } catch (const TemplateError& e) {
    return e.what();
  }
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------- literals

TEST(JinjaLiterals, NumbersPrintLikePython) {
  EXPECT_EQ(render("{{ 1 }} {{ 1.0 }} {{ 0.5 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }}"),
            "1 1.0 0.5 1e+16 1000000000000000.0 1e-05 0.0001 -0.0");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1/3 }} {{ 1e300 * 1e10 }} {{ 123456789.123 }} {{ 1.5e-7 }}"),
            "0.30000000000000004 0.3333333333333333 inf 123456789.123 1.5e-07");
  EXPECT_EQ(render("{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_0.5 }} {{ 2e3 }}"),
            "1000 31 15 5 10.5 2000.0");
  EXPECT_EQ(render("{{ x }} {{ y }} {{ z }}", {{"x", 1.0}, {"y", 3.14159}, {"z", 1e-7}}),
            "1.0 3.14159 1e-07");
  EXPECT_EQ(render("{{ 9223372036854775807 }}"), "9223372036854775807");
}

TEST(JinjaLiterals, ConstantsStringsAndContainers) {
  EXPECT_EQ(render("{{ true }} {{ false }} {{ none }} {{ True }} {{ None }}"),
            "True False None True None");
  EXPECT_EQ(render(R"({{ 'a' 'b' }} {{ "x\ny" }} {{ '\u00e9\x41\101' }} {{ '\q' }})"),
            "ab x\ny éAA \\q");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}] }} {{ (1,) }} {{ (1, 2) }} {{ () }}"),
            "[1, 'a', None, True, 1.5, [2], {'k': 'v'}] (1,) (1, 2) ()");
  EXPECT_EQ(render(R"({{ {'a': 1, 2: 'b'} }} {{ ["it's", 'say "hi"', 'both \' "'] }} {{ ['\n\t\\'] }})"),
            R"({'a': 1, 2: 'b'} ["it's", 'say "hi"', 'both \' "'] ['\n\t\\'])");
}

// ---------------------------------------------------------------- operators

TEST(JinjaOperators, Arithmetic) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 6 / 3 }}"),
            "3 -4 1 2 -2 3.5 2.0");
  EXPECT_EQ(render("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 4 ** 0.5 }}"),
            "1024 0.5 64 4 2.0");  // ** is left-associative in Jinja, and binds after unary -
  EXPECT_EQ(render("{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 1 + 1.5 }} {{ true + 1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}"),
            "3 9 2.5 2 3.0 0.5");
  EXPECT_EQ(render("{{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'x' * 0 }}|"),
            "ababab ababab [1, 1, 1] ab [1, 2] |");
  EXPECT_EQ(render("{{ 'x' ~ 1 ~ none ~ true ~ 1.0 ~ y }} {{ 1 ~ 2 }}"), "x1NoneTrue1.0 12");
  EXPECT_EQ(render("{{ '%s-%d-%.2f' % ('a', 3, 1.234) }} {{ '%5s|%-5s|' % ('ab', 'cd') }} {{ '%(x)s' % {'x': 1} }} {{ '%d%%' % 50 }}"),
            "a-3-1.23    ab|cd   | 1 50%");
}

TEST(JinjaOperators, ComparisonAndLogic) {
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ 2 >= 2 }} {{ 1 != 2 }}"),
            "True False True True True True True True");
  EXPECT_EQ(render("{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 1 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 1.0 in [1] }}"),
            "True True True True True True");
  // and/or return an operand, as in Python.
  EXPECT_EQ(render("{{ x or 'default' }} {{ 0 or '' }}|{{ 1 and 2 }} {{ 0 and 2 }} {{ not 0 }} {{ not x }} {{ [] or {} or 'last' }}"),
            "default |2 0 True True last");
  EXPECT_EQ(render("{{ not 1 == 2 }} {{ (1, 2) == [1, 2] }} {{ {'a':1,'b':2} == {'b':2,'a':1} }} {{ none == false }} {{ 0 == false }}"),
            "True False True False True");
}

TEST(JinjaOperators, ConditionalExpression) {
  EXPECT_EQ(render("{{ 'yes' if true else 'no' }} [{{ 'yes' if false }}] {{ 1 if 0 else 2 if 0 else 3 }}"),
            "yes [] 3");
  EXPECT_EQ(render("{{ 1 if true else 2 | string }} {{ 'a' ~ 'b' | upper }} {{ -1 | abs }}"), "1 aB 1");
}

// ---------------------------------------------------------------- undefined

TEST(JinjaUndefined, PrintsEmptyIsFalsyAndIterable) {
  EXPECT_EQ(render("[{{ x }}] [{{ x is defined }}] [{{ not x }}] [{% for i in x %}{{ i }}{% else %}empty{% endfor %}]"),
            "[] [False] [True] [empty]");
  EXPECT_EQ(render("{{ x is iterable }} {{ x is sequence }} {{ x is mapping }} {{ x is string }} {{ x is none }}"),
            "True True False False False");
  EXPECT_EQ(render("{{ x == 1 }} {{ x != 1 }} {{ x == x }} {{ 1 in x }} {{ x|length }} [{{ x|trim }}] [{{ x|string }}]"),
            "False True True False 0 [] []");
  EXPECT_EQ(render("{{ x|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ ''|d('e', boolean=true) }} [{{ x|d }}]"),
            "d None d e []");
}

TEST(JinjaUndefined, MissingKeysAndAttributesAreUndefined) {
  json ctx = {{"d", {{"a", 1}}}, {"l", {1, 2, 3}}};
  EXPECT_EQ(render("{{ d.missing }}|{{ d.missing is defined }}|{{ d['missing'] is undefined }}|{{ d.a }}", ctx),
            "|False|True|1");
  EXPECT_EQ(render("{{ l[5] is defined }} {{ none.x is defined }} {{ 'abc'[9] is defined }}", ctx),
            "False False False");
}

TEST(JinjaUndefined, UsingUndefinedAsAValueFails) {
  EXPECT_EQ(error_of("{{ x.y }}"), "template line 1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ d.a.b }}", {{"d", json::object()}}),
            "template line 1: 'dict object' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ x + 1 }}"), "template line 1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ x < 1 }}"), "template line 1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ l[3] + 1 }}", {{"l", {1}}}), "template line 1: list object has no element 3");
  EXPECT_EQ(error_of("{{ x() }}"), "template line 1: 'x' is undefined (not a known function or macro)");
  EXPECT_EQ(error_of("{{ x|tojson }}"),
            "template line 1: filter 'tojson': Object of type Undefined is not JSON serializable");
}

// ---------------------------------------------------------------- subscripts

TEST(JinjaSubscripts, IndexingAndSlicing) {
  json ctx = {{"l", {1, 2, 3, 4, 5}}, {"s", "héllo wörld"}};
  EXPECT_EQ(render("{{ l[::-1] }} {{ l[1:] }} {{ l[:2] }} {{ l[::2] }} {{ l[-2:] }} {{ l[1:-1] }} {{ l[5:] }} {{ l[::-2] }} {{ l[3:0:-1] }}", ctx),
            "[5, 4, 3, 2, 1] [2, 3, 4, 5] [1, 2] [1, 3, 5] [4, 5] [2, 3, 4] [] [5, 3, 1] [4, 3, 2]");
  EXPECT_EQ(render("{{ l[-1] }} {{ l[0] }} {{ l.0 }} {{ (1,2,3)[1:] }}", ctx), "5 1 1 (2, 3)");
  // Strings index by code point.
  EXPECT_EQ(render("{{ s[::-1] }}|{{ s[1:3] }}|{{ s[-2:] }}|{{ s[1] }}|{{ s|length }}", ctx),
            "dlröw olléh|él|ld|é|11");
  EXPECT_EQ(render("{{ d['a'][-1]['b'] }} {{ d.a[1].b }} {{ {1: 'one'}[1.0] }} {{ {(1, 2): 'pair'}[1, 2] }}",
                   {{"d", {{"a", {1, {{"b", "c"}}}}}}}),
            "c c one pair");
  EXPECT_EQ(error_of("{{ 'abc'[::0] }}"), "template line 1: slice step cannot be zero");
  // Slices compile to plain Python subscripts in Jinja2: no undefined fallback.
  EXPECT_EQ(error_of("{{ n[:2] }}", {{"n", nullptr}}),
            "template line 1: 'NoneType' object is not subscriptable");
}

// ---------------------------------------------------------------- methods

TEST(JinjaMethods, Strings) {
  json ctx = {{"s", "abcxyz"}};
  EXPECT_EQ(render("{{ s.startswith('ab') }} {{ s.endswith('yz') }} {{ s.startswith(('x','a')) }} {{ 'Hello'.startswith('He', 1) }}", ctx),
            "True True True False");
  EXPECT_EQ(render("{{ s.upper() }} {{ s.split('c') }} {{ 'a b  c'.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", ctx),
            "ABCXYZ ['ab', 'xyz'] ['a', 'b', 'c'] ['a', 'b,c'] ['a,b', 'c']");
  EXPECT_EQ(render(R"({{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\n\na\n'.lstrip('\n') }}|{{ 'a\n\n'.rstrip('\n') }}|)"),
            "x|a|a\n|a|");
  EXPECT_EQ(render("{{ 'hello world'.title() }} {{ 'hello'.capitalize() }} {{ 'HeLLo'.lower() }} {{ 'aaa'.replace('a', 'b', 2) }}"),
            "Hello World Hello hello bba");
  EXPECT_EQ(render("{{ 'abcabc'.count('b') }} {{ 'abc'.find('c') }} {{ 'abc'.find('z') }} {{ 'héllo'.find('l') }} {{ 'héllo'.index('o') }}"),
            "2 2 -1 2 4");
  EXPECT_EQ(render("{{ ', '.join(['a', 'b']) }} {{ '{} and {}'.format('x', 'y') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='n') }}"),
            "a, b x and y aba n!");
  EXPECT_EQ(render("{{ 'straße'.upper() }} {{ 'ÉCOLE'.lower() }} {{ 'éa'.title() }} {{ 'ß'.capitalize() }}"),
            "STRASSE école Éa Ss");
  EXPECT_EQ(render(R"({{ s.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }}|{{ s.split('</think>')[-1].lstrip('\n') }})",
                   {{"s", "<think>\nR\n</think>\n\nA"}}),
            "R|A");
  EXPECT_EQ(render(R"({{ '\u3000a\xa0b'.split() }} {{ 'a\nb\r\nc'.splitlines() }})"),
            "['a', 'b'] ['a', 'b', 'c']");
  EXPECT_EQ(error_of("{{ 'x'.casefold() }}"), "template line 1: string method 'casefold' is not supported");
  EXPECT_EQ(error_of("{{ 'x'.startswith() }}"),
            "template line 1: startswith() missing required argument 'prefix'");
}

TEST(JinjaMethods, DictsAndLists) {
  json ctx = {{"d", {{"a", 1}, {"b", {2}}}}};
  EXPECT_EQ(render("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys()|list }} {{ d.values()|list }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ctx),
            "1 None 5 ['a', 'b'] [1, [2]] a=1;b=[2];");
  // Python attribute lookup comes before the key: d.items is the method.
  EXPECT_EQ(render("{{ d.items is callable }}|{{ d['items'] }}|{{ d.other }}", {{"d", {{"items", "key!"}, {"other", 3}}}}),
            "True|key!|3");
  EXPECT_EQ(render("{{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }}"), "2 1");
  // The immutable sandbox refuses methods that modify.
  EXPECT_EQ(render("[{{ [1,2].append }}]"), "[]");
  EXPECT_EQ(error_of("{{ [1].append(3) }}"), "template line 1: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(error_of("{{ {'a': 1}.update({}) }}"), "template line 1: access to attribute 'update' of 'dict' object is unsafe.");
}

// ---------------------------------------------------------------- filters

TEST(JinjaFilters, Sequences) {
  EXPECT_EQ(render("{{ [3,1,2]|sort }} {{ ['b','A','a']|sort }} {{ ['b','A','a']|sort(case_sensitive=true) }} {{ [3,1,2]|sort(reverse=true) }} {{ [{'n':2},{'n':1}]|sort(attribute='n') }}"),
            "[1, 2, 3] ['A', 'a', 'b'] ['A', 'a', 'b'] [3, 2, 1] [{'n': 1}, {'n': 2}]");
  EXPECT_EQ(render("{{ [1,2,3]|join(',') }} {{ [1,2,3]|join }} {{ [{'a':'x'},{'a':'y'}]|join('-', attribute='a') }} {{ 'abc'|join('.') }}"),
            "1,2,3 123 x-y a.b.c");
  EXPECT_EQ(render("{{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ []|first is defined }} {{ {'a':1,'b':2}|first }} {{ {'a':1,'b':2}|last }}"),
            "1 3 a c False a b");
  EXPECT_EQ(render("{{ [1,2,3]|sum }} {{ [{'v':1},{'v':2.5}]|sum(attribute='v') }} {{ [1,2]|sum(start=10) }} {{ [[1], [2]]|sum(start=[]) }}"),
            "6 3.5 13 [1, 2]");
  EXPECT_EQ(render("{{ [3,1,2]|min }} {{ [3,1,2]|max }} {{ ['b','A']|min }} {{ []|max is defined }}"), "1 3 A False");
  EXPECT_EQ(render("{{ [1,2,2,3,1]|unique|list }} {{ ['a','A','b']|unique|list }} {{ [1,2,3]|reverse|list }} {{ 'abc'|reverse }}"),
            "[1, 2, 3] ['a', 'b'] [3, 2, 1] cba");
  EXPECT_EQ(render("{{ 'ab'|list }} {{ {'x':1}|list }} {{ [1,2]|length }} {{ {'a':1}|count }} {{ 'héllo'|length }}"),
            "['a', 'b'] ['x'] 2 1 5");
  EXPECT_EQ(render("{{ [1,2,3,4,5]|batch(2)|list }} {{ [1,2,3,4,5]|batch(2, 'x')|list }} {{ [1,2,3,4,5]|slice(2)|list }} {{ [1,2,3,4,5]|slice(3, 0)|list }}"),
            "[[1, 2], [3, 4], [5]] [[1, 2], [3, 4], [5, 'x']] [[1, 2, 3], [4, 5]] [[1, 2], [3, 4], [5, 0]]");
}

TEST(JinjaFilters, MappingsAndSelection) {
  json d = {{"b", 1}, {"a", 2}};
  EXPECT_EQ(render("{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value') }} {{ d|dictsort(reverse=true) }}", {{"d", d}}),
            "[('b', 1), ('a', 2)] [('a', 2), ('b', 1)] [('b', 1), ('a', 2)] [('b', 1), ('a', 2)]");
  EXPECT_EQ(render("[{{ x|items|list }}]"), "[[]]");
  EXPECT_EQ(error_of("{{ 5|items }}"), "template line 1: filter 'items': Can only get item pairs from a mapping.");
  json users = {{"users", {{{"name", "x"}, {"active", true}, {"n", 1}}, {{"name", "y"}, {"active", false}, {"n", 2}}}}};
  EXPECT_EQ(render("{{ users|map(attribute='name')|join(',') }} {{ ['a','b']|map('upper')|list }} {{ users|selectattr('active')|map(attribute='name')|list }} {{ users|rejectattr('active')|map(attribute='n')|list }}", users),
            "x,y ['A', 'B'] ['x'] [2]");
  EXPECT_EQ(render("{{ users|selectattr('n', 'equalto', 2)|map(attribute='name')|first }} {{ users|selectattr('n', '>', 0)|list|length }} {{ users|map(attribute='zz', default='-')|list }}", users),
            "y 2 ['-', '-']");
  EXPECT_EQ(render("{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ [0,1,'',none,'a']|select|list }} {{ [1,2,3]|select('divisibleby', 3)|list }} {{ none|select|list }}"),
            "[1, 3] [2, 4] [1, 'a'] [3] []");
  EXPECT_EQ(render("{{ [1,2,3]|map('string')|join('+') }} {{ [{'a': {'b': 7}}]|map(attribute='a.b')|list }}"), "1+2+3 [7]");
}

TEST(JinjaFilters, Strings) {
  EXPECT_EQ(render("{{ 'Hello World'|upper }} {{ 'Hello World'|lower }} {{ 'hello world'|capitalize }} {{ 'hello-world (x) [y] <z> {w}'|title }}"),
            "HELLO WORLD hello world Hello world Hello-World (X) [Y] <Z> {W}");
  EXPECT_EQ(render("{{ '  a  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ '  \u00a0x\u2003 '|trim }}|{{ '\u200bx'|trim }}|"),
            "a|a|x|\u200bx|");  // Python str.strip() whitespace, which excludes U+200B
  EXPECT_EQ(render(R"({{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, first=true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'x\ny'|indent('> ') }})"),
            "a\n    b\n\n    c|  a\n  b|a\n  \n  b|x\n> y");
  EXPECT_EQ(render("{{ 'abc'|center(9) }}|{{ 'ab'|center(7) }}|{{ 'one two  three'|wordcount }} {{ 'a <b> & \"c\"'|e }} {{ '<x>'|safe }}"),
            "   abc   |   ab  |3 a &lt;b&gt; &amp; &#34;c&#34; <x>");
  EXPECT_EQ(render("{{ 'hello world, this is long'|truncate(9) }}|{{ 'hello world, this is long'|truncate(9, true) }}|{{ 'short'|truncate(10) }}|{{ 'hello world foo'|truncate(11, false, '..', 0) }}"),
            "hello...|hello ...|short|hello..");
  EXPECT_EQ(render("{{ '%s=%s'|format('a', 1) }} {{ 'a b'|replace(' ', '_') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|wordcount }}"),
            "a=1 a_b bba 1");
}

TEST(JinjaFilters, Conversions) {
  EXPECT_EQ(render("{{ '1'|int }} {{ '1.9'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ 1.9|int }} {{ '0x1f'|int(base=16) }} {{ '  42 '|int }} {{ true|int }} {{ none|int }}"),
            "1 1 0 5 1 31 42 1 0");
  EXPECT_EQ(render("{{ '1.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ '1e3'|float }} {{ 'nan'|float }} {{ '-inf'|float }}"),
            "1.5 0.0 3.0 1000.0 nan -inf");
  EXPECT_EQ(render("{{ -3|abs }} {{ -3.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(method='ceil') }} {{ 2.9|round(method='floor') }} {{ 3|round }}"),
            "3 3.5 2.0 4.0 2.67 3.0 2.0 3");
  // |string is Python str(); printing uses the same rules.
  EXPECT_EQ(render("{{ 5|string + 'x' }} {{ [1]|string }} {{ none|string }} {{ 1.0|string }} {{ true|string }} {{ 0.5|string }}"),
            "5x [1] None 1.0 True 0.5");
  EXPECT_EQ(render("{{ [1, 2]|attr('count') is defined }} {{ {'a': 1}|attr('a') is defined }}"), "True False");
}

TEST(JinjaFilters, ToJsonLikePythonJsonDumps) {
  json x = json::parse(R"({"a": [1, 2.5, null, true, "é\n\"\\", {"b": {}}], "c": [], "u": "\u2028\u007f\u0001"})");
  EXPECT_EQ(render("{{ x|tojson }}", {{"x", x}}),
            "{\"a\": [1, 2.5, null, true, \"é\\n\\\"\\\\\", {\"b\": {}}], \"c\": [], \"u\": \"\u2028\x7f\\u0001\"}");
  json y = json::parse(R"({"b": "é😀", "a": [1, {"c": null}], "e": []})");
  EXPECT_EQ(render("{{ y|tojson(indent=2) }}", {{"y", y}}),
            "{\n  \"b\": \"é😀\",\n  \"a\": [\n    1,\n    {\n      \"c\": null\n    }\n  ],\n  \"e\": []\n}");
  EXPECT_EQ(render("{{ y|tojson(ensure_ascii=true) }}|{{ y|tojson(sort_keys=true) }}|{{ y|tojson(separators=(',', ':')) }}", {{"y", y}}),
            R"({"b": "\u00e9\ud83d\ude00", "a": [1, {"c": null}], "e": []}|{"a": [1, {"c": null}], "b": "é😀", "e": []}|{"b":"é😀","a":[1,{"c":null}],"e":[]})");
  EXPECT_EQ(render("{{ 1.0|tojson }} {{ 1e20|tojson }} {{ 'a'|tojson }} {{ (1,2)|tojson }} {{ none|tojson }} {{ 'nan'|float|tojson }}"),
            "1.0 1e+20 \"a\" [1, 2] null NaN");
}

// ---------------------------------------------------------------- tests

TEST(JinjaTests, TypesAndValues) {
  EXPECT_EQ(render("{{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 1 is boolean }} {{ none is none }} {{ 'a' is string }}"),
            "True True True False True True False True True");
  EXPECT_EQ(render("{{ {} is mapping }} {{ [] is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ {} is sequence }} {{ 1 is sequence }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ {} is iterable }}"),
            "True False True True True False True False True");
  EXPECT_EQ(render("{{ 2 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is eq 1 }} {{ 1 is ne 2 }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 1 is in [1] }}"),
            "True True True False True True True False True False True");
  EXPECT_EQ(render("{{ false is false }} {{ 0 is false }} {{ true is true }} {{ 1 is true }} {{ none is not none }} {{ x is not defined }} {{ 'abc' is lower }} {{ 'ABC' is upper }}"),
            "True False True False False True True True");
  EXPECT_EQ(render("{{ 'upper' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ 2.0 is even }} {{ none is sameas none }} {{ 1 is equalto 1 }}"),
            "True True True True True True");
}

// ---------------------------------------------------------------- statements

TEST(JinjaStatements, IfElifElse) {
  EXPECT_EQ(render("{% if false %}a{% elif true %}b{% else %}c{% endif %}{% if 0 %}x{% elif 0 %}y{% else %}z{% endif %}{% if 1 %}w{% endif %}"),
            "bzw");
}

TEST(JinjaStatements, ForLoopVariables) {
  EXPECT_EQ(render("{% for i in range(3) %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}"),
            "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|");
  EXPECT_EQ(render("{% for i in [1,2,3] %}{{ loop.previtem is defined }}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}"),
            "False-2;True1-3;True2-;");
  EXPECT_EQ(render("{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %} {% for i in [1,1,2] %}{{ loop.changed(i) }}{% endfor %} {% for i in [1] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}"),
            "aba TrueFalseTrue 10");
  EXPECT_EQ(render("{% for i in range(2) %}{% for j in range(2) %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}"),
            "121;122;");
}

TEST(JinjaStatements, ForLoopForms) {
  EXPECT_EQ(render("{% for i in range(10) if i is odd %}{{ i }}{{ loop.index }}{{ loop.length }},{% endfor %}"),
            "115,325,535,745,955,");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}|items %}{{ k }}{{ v }}{% endfor %} {% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}"),
            "a1b2 123");
  EXPECT_EQ(render("{% for i in [] %}x{% else %}none{% endfor %} {% for i in [1] %}x{% else %}none{% endfor %} {% for i in [1] if false %}x{% else %}filtered{% endfor %}"),
            "none x filtered");
  EXPECT_EQ(render("{% for c in 'héllo' %}{{ c }}.{% endfor %} {% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %} {% for m in messages[::-1] %}{{ m }}{% endfor %}",
                   {{"messages", {1, 2, 3}}}),
            "h.é.l.l.o. ab 321");
  EXPECT_EQ(error_of("{% for i in 5 %}{% endfor %}"), "template line 1: 'int' object is not iterable");
  EXPECT_EQ(error_of("{% for a, b in [1] %}{% endfor %}"), "template line 1: cannot unpack non-iterable int object");
  EXPECT_EQ(error_of("{% for a, b in [[1]] %}{% endfor %}"),
            "template line 1: not enough values to unpack (expected 2, got 1)");
}

TEST(JinjaStatements, BreakAndContinue) {
  EXPECT_EQ(render("{% for i in range(10) %}{% if i == 5 %}{% break %}{% endif %}{% if i is even %}{% continue %}{% endif %}{{ i }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for a in [1, 2] %}{% for b in [3, 4] %}{% if b == 4 %}{% break %}{% endif %}{{ a }}{{ b }}{% endfor %}{% endfor %}"),
            "1323");
  EXPECT_EQ(error_of("{% break %}"), "template line 1: 'break' outside of a loop");
}

TEST(JinjaStatements, ScopingFollowsJinja2) {
  // Loop bodies get their own scope: assignments do not leak out and do not
  // carry over between iterations.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"), "1231");
  EXPECT_EQ(render("{% for i in range(3) %}{% if i == 1 %}{% set y = 'set' %}{% endif %}{{ y }},{% endfor %}"), ",set,,");
  EXPECT_EQ(render("{% set content = 'x' %}{% for m in [1] %}{% set content = 'y' %}{{ content }}{% endfor %}{{ content }}"), "yx");
  // `if` is not a scope; `with` is.
  EXPECT_EQ(render("{% if true %}{% set z = 1 %}{% endif %}{{ z }} {% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}"),
            "1 3False");
}

TEST(JinjaStatements, SetForms) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set c = 1, 2 %}{{ c }} {% set t = (1,) %}{{ t }}"), "12 (1, 2) (1,)");
  EXPECT_EQ(render("{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}] {% set y | upper %}up{% endset %}{{ y }}"), "[block 2] UP");
  EXPECT_EQ(render("{% set ns = namespace(n=0, l=[]) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.n }} {{ ns.l }} {{ ns.missing is defined }}"),
            "3 [0, 1, 2] False");
  EXPECT_EQ(render("{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }} {{ ns }}"), "12 <Namespace {'a': 1, 'b': 2}>");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.y = 2 %}"),
            "template line 1: cannot assign attribute 'y' on non-namespace object 'x'");
}

TEST(JinjaStatements, Macros) {
  EXPECT_EQ(render("{% macro m(a, b='B', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 2) }} {{ m(1, c=3) }} {{ m(a=4) }} [{{ m() }}]"),
            "1BNone 12None 1B3 4BNone [BNone]");
  // Called as an expression a macro returns its output, usable with filters.
  EXPECT_EQ(render("{% macro m(a) %}  <{{ a }}>  {% endmacro %}{% set r = m('x')|trim %}[{{ r }}] {{ m('y') ~ '!' }} {{ m }}"),
            "[<x>]   <y>  ! <Macro 'm'>");
  EXPECT_EQ(render("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"), "(1, 2){'k': 3}");
  EXPECT_EQ(render("{% macro m(x, y=x * 2) %}{{ x }}{{ y }}{% endmacro %}{{ m(3) }}"), "36");
  EXPECT_EQ(render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}"), "120");
  // Macros see the template's variables as they are when called.
  EXPECT_EQ(render("{% macro m() %}{{ g }}{% endmacro %}{% set g = 1 %}{{ m() }}{% set g = 2 %}{{ m() }}"), "12");
  EXPECT_EQ(render("{% set ns = namespace(v=0) %}{% macro inc() %}{% set ns.v = ns.v + 1 %}{% endmacro %}{{ inc() }}{{ inc() }}{{ ns.v }}"), "2");
  EXPECT_EQ(error_of("{% macro m(a) %}x{% endmacro %}{{ m(1, 2) }}"),
            "template line 1: macro 'm' takes not more than 1 argument(s)");
  EXPECT_EQ(error_of("{% macro m(a) %}x{% endmacro %}{{ m(b=2) }}"),
            "template line 1: macro 'm' takes no keyword argument 'b'");
}

TEST(JinjaStatements, CallBlocks) {
  EXPECT_EQ(render("{% macro wrap(cls) %}<div class={{ cls }}>{{ caller() }}</div>{% endmacro %}{% call wrap('c') %}inner {{ 1 }}{% endcall %}"),
            "<div class=c>inner 1</div>");
  EXPECT_EQ(render("{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1,2]) %}[{{ x }}]{% endcall %}"),
            "[1][2]");
  EXPECT_EQ(render("{% macro m() %}{{ caller is defined }}{% endmacro %}{{ m() }}"), "False");
}

TEST(JinjaStatements, FilterRawWithGeneration) {
  EXPECT_EQ(render("{% filter upper %}hello {{ 'x' }}{% endfilter %} {% filter trim|upper %}  a  {% endfilter %}"), "HELLO X A");
  EXPECT_EQ(render("{% raw %}{{ not parsed }} {% if %}{% endraw %}"), "{{ not parsed }} {% if %}");
  // transformers' {% generation %} marks assistant text for training masks.
  EXPECT_EQ(render("a{% generation %}b{{ 1 }}{% endgeneration %}c"), "ab1c");
}

TEST(JinjaStatements, Globals) {
  EXPECT_EQ(render("{{ range(5)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b=2) }} {{ dict({'z': 0}, y=1) }}"),
            "[0, 1, 2, 3, 4] [1, 4, 7] [5, 3, 1] {'a': 1, 'b': 2} {'z': 0, 'y': 1}");
  EXPECT_EQ(render("{% set j = joiner(', ') %}{% for i in range(3) %}{{ j() }}{{ i }}{% endfor %}"), "0, 1, 2");
  EXPECT_EQ(error_of("{{ range(1000000)|length }}"),
            "template line 1: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
}

TEST(JinjaStatements, RaiseException) {
  try {
    render("line 1\n{% if true %}\n  {{ raise_exception('No messages provided.') }}\n{% endif %}");
    FAIL() << "expected an error";
  } catch (const TemplateError& e) {
    EXPECT_TRUE(e.raised());
    EXPECT_EQ(e.message(), "No messages provided.");
    EXPECT_EQ(e.line(), 3);
    EXPECT_STREQ(e.what(), "template line 3: raise_exception: No messages provided.");
  }
}

TEST(JinjaStatements, StrftimeNow) {
  setenv("TZ", "UTC", 1);
  tzset();
  Template t("{{ strftime_now('%Y-%m-%d %H:%M') }}|{{ strftime_now('%d %b %Y') }}");
  RenderOptions options;
  options.now = 1700000000;  // 2023-11-14 22:13:20 UTC
  EXPECT_EQ(t.render(json::object(), options), "2023-11-14 22:13|14 Nov 2023");
  EXPECT_EQ(Template("{{ strftime_now('%Y')|length }}").render(json::object()), "4");  // real clock
}

// ---------------------------------------------------------------- whitespace

TEST(JinjaWhitespace, DashModifiersStripAllWhitespace) {
  EXPECT_EQ(render("a  {%- if true %}  b  {% endif -%}  c"), "a  b  c");
  EXPECT_EQ(render("a {{- ' b ' -}} c {{ ' d ' }} e"), "a b c  d  e");
  EXPECT_EQ(render("{%- set x = 1 -%}\n\n{{- x -}}\n\n"), "1");
  EXPECT_EQ(render("  {{ 'v' }}  \n{%- if true -%}\n\n  t  \n{%- endif %}\nend"), "  vtend");
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks drops the
  // indentation before one. Variable tags are left alone.
  EXPECT_EQ(render("x\n  {% if true %}\n  y\n  {% endif %}\nz\n"), "x\n  y\nz");
  EXPECT_EQ(render("line1\n    {% for i in [1,2] %}\n    item {{ i }}\n    {% endfor %}\nlast"),
            "line1\n    item 1\n    item 2\nlast");
  EXPECT_EQ(render("\t{% if true %}\tx{% endif %}\n"), "\tx");
  EXPECT_EQ(render("  {{ 'v' }}\n"), "  v");
  // `+` disables them for one tag.
  EXPECT_EQ(render("x\n  {%+ if true %}\n  y\n  {% endif +%}\nz"), "x\n    y\n\nz");
  // Comments behave like block tags.
  EXPECT_EQ(render("{# comment #}\na\n  {# c2 #}\nb {#- c3 -#} c\n"), "a\nbc");
  // Only one trailing newline of the template is dropped; \r\n and \r become \n.
  EXPECT_EQ(render("a\r\nb\rc\n{% if true %}\r\nd\n{% endif %}\n\n"), "a\nb\nc\nd\n");
  EXPECT_EQ(render("{% raw -%}  \n  raw {{x}}  {%- endraw %}|"), "raw {{x}}|");
  EXPECT_EQ(render("  {% raw %}  r  {% endraw %}  \n|"), "  r    \n|");
}

TEST(JinjaWhitespace, OptionsCanBeTurnedOff) {
  Options plain;
  plain.trim_blocks = false;
  plain.lstrip_blocks = false;
  plain.keep_trailing_newline = true;
  EXPECT_EQ(render("x\n  {% if true %}\n  y\n  {% endif %}\nz\n", json::object(), plain), "x\n  \n  y\n  \nz\n");
}

TEST(JinjaWhitespace, BracesInsideTags) {
  EXPECT_EQ(render("{{ {'a': {'b': 1}} }} {{ '}}' }} {{ '%}' }}"), "{'a': {'b': 1}} }} %}");
}

// ---------------------------------------------------------------- errors

TEST(JinjaErrors, SyntaxErrorsNameTheConstructAndLine) {
  EXPECT_EQ(error_of("a\n{% if x %}\nb"),
            "template line 2: 'if' statement is not closed: reached the end of the template looking for 'elif' or 'else' or 'endif'");
  EXPECT_EQ(error_of("{% for x in y %}\n{% endif %}"),
            "template line 2: unexpected '{% endif %}' inside the 'for' statement opened on line 1");
  EXPECT_EQ(error_of("{% endfor %}"), "template line 1: unexpected '{% endfor %}': no block is open");
  EXPECT_EQ(error_of("\n\n{{ 1 + }}"), "template line 3: unexpected '}}', expected an expression");
  EXPECT_EQ(error_of("{{ (1 }}"), "template line 1: unexpected '}', expected ')'");
  EXPECT_EQ(error_of("{{ x | nofilter }}"), "template line 1: unknown filter 'nofilter'");
  EXPECT_EQ(error_of("{{ x is notatest }}"), "template line 1: unknown test 'notatest'");
  EXPECT_EQ(error_of("{% macro m(a=1, b) %}{% endmacro %}"),
            "template line 1: non-default parameter 'b' follows a default parameter");
  EXPECT_EQ(error_of("x\n{{ 'abc }}"), "template line 2: unterminated string literal");
  EXPECT_EQ(error_of("{# unclosed"), "template line 1: missing end of comment tag ('#}')");
  EXPECT_EQ(error_of("{{ f(a=1, 2) }}"), "template line 1: positional argument follows keyword argument");
  EXPECT_EQ(error_of("{{ a\n+ }}"), "template line 2: unexpected '}}', expected an expression");
}

TEST(JinjaErrors, UnsupportedConstructsAreRejectedWhenParsing) {
  EXPECT_EQ(error_of("ok\n{% include 'x.jinja' %}"), "template line 2: unsupported statement '{% include %}'");
  EXPECT_EQ(error_of("{% extends 'base' %}"), "template line 1: unsupported statement '{% extends %}'");
  EXPECT_EQ(error_of("{% import 'm' as m %}"), "template line 1: unsupported statement '{% import %}'");
  EXPECT_EQ(error_of("{% block b %}{% endblock %}"), "template line 1: unsupported statement '{% block %}'");
  EXPECT_EQ(error_of("{% do x.append(1) %}"), "template line 1: unsupported statement '{% do %}'");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"),
            "template line 1: recursive loops ('for ... recursive') are not supported");
  EXPECT_EQ(error_of("{{ f(*args) }}"), "template line 1: '*args' and '**kwargs' in calls are not supported");
  EXPECT_EQ(error_of("{{ x|urlize }}"), "template line 1: unknown filter 'urlize'");
  EXPECT_EQ(error_of("{% foo %}"), "template line 1: unknown statement '{% foo %}'");
}

TEST(JinjaErrors, RuntimeErrorsNameTheConstructAndLine) {
  EXPECT_EQ(error_of("a\n\n{{ none|length }}"), "template line 3: filter 'length': object of type 'NoneType' has no len()");
  EXPECT_EQ(error_of("{% for i in [1] %}\n  {{ i is divisibleby 0 }}\n{% endfor %}"),
            "template line 2: test 'divisibleby': integer division or modulo by zero");
  EXPECT_EQ(error_of("{% macro m() %}\n{{ 1 // 0 }}\n{% endmacro %}\n{{ m() }}"),
            "template line 2: integer division or modulo by zero");
  EXPECT_EQ(error_of("{{ none + 1 }}"), "template line 1: unsupported operand type(s) for +: 'NoneType' and 'int'");
  EXPECT_EQ(error_of("{{ 1 < 'a' }}"), "template line 1: '<' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(error_of("{{ 'a' in 1 }}"), "template line 1: argument of type 'int' is not iterable");
  EXPECT_EQ(error_of("{{ 1 in 'abc' }}"), "template line 1: 'in <string>' requires string as left operand, not int");
  EXPECT_EQ(error_of("{{ 'a'() }}"), "template line 1: 'str' object is not callable");
  EXPECT_EQ(error_of("{{ 2 ** 100 }}"), "template line 1: integer overflow");
  EXPECT_EQ(error_of("{{ [1, 'a']|sort }}"), "template line 1: filter 'sort': '<' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(error_of("{{ [] in {} }}"), "template line 1: unhashable type: 'list'");
}

// ---------------------------------------------------------------- limits

class JinjaLimits : public ::testing::Test {
 protected:
  // Each hostile template must fail cleanly and long before it would end without
  // the limit. The time bound is only a backstop against a limit that is not
  // checked: generous, because a sanitizer build on a loaded 2-core machine takes
  // ~3 s to reach the 64 MiB output limit (flaked at a 3 s bound).
  void expect_fails_fast(const std::string& tpl, const std::string& message_part) {
    auto start = std::chrono::steady_clock::now();
    std::string err = error_of(tpl);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_FALSE(contains(err, "no error")) << tpl;
    EXPECT_TRUE(contains(err, message_part)) << tpl << "\n -> " << err;
    EXPECT_LT(seconds, 30.0) << tpl;
  }
};

TEST_F(JinjaLimits, LoopIterations) {
  expect_fails_fast("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                    "loop iterations");
  Options small;
  small.limits.max_loop_iterations = 10;
  EXPECT_EQ(error_of("{% for i in range(11) %}{% endfor %}", json::object(), small),
            "template line 1: template exceeded 10 loop iterations");
  EXPECT_EQ(render("{% for i in range(10) %}{% endfor %}ok", json::object(), small), "ok");
}

TEST_F(JinjaLimits, Recursion) {
  expect_fails_fast("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "levels deep");
  expect_fails_fast("{% macro f() %}{% for i in [1] %}{{ f() }}{% endfor %}{% endmacro %}{{ f() }}", "levels deep");
}

TEST_F(JinjaLimits, OutputAndStringSize) {
  expect_fails_fast("{% for i in range(100000) %}{% for j in range(1000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}{% endfor %}",
                    "");
  expect_fails_fast("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                    "bytes");
  expect_fails_fast("{{ 'x' * 10000000000 }}", "output limit");
  expect_fails_fast("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                    "");
  Options small;
  small.limits.max_output_bytes = 100;
  EXPECT_EQ(error_of("{% for i in range(101) %}x{% endfor %}", json::object(), small),
            "template line 1: output exceeds 100 bytes");
}

TEST_F(JinjaLimits, DeepNestingIsRejectedNotCrashing) {
  expect_fails_fast("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}",
                    "nested too deeply");
  std::string ifs;
  for (int i = 0; i < 5000; i++) ifs += "{% if true %}";
  expect_fails_fast(ifs, "nested too deeply");
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; i++) chain += " + 1";
  expect_fails_fast(chain + " }}", "nested too deeply");
  expect_fails_fast("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}",
                    "nested deeper");
}

TEST_F(JinjaLimits, SelfReferencingNamespaceDoesNotRecurseForever) {
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|string|length > 0 }}"), "True");
}

// ---------------------------------------------------------------- reuse

TEST(JinjaTemplate, ParsedOnceRenderedManyTimesAndConcurrently) {
  Template t("{% set ns = namespace(n=0) %}{% set j = joiner('+') %}{% for x in xs %}{% set ns.n = ns.n + x %}{{ j() }}{{ x }}{% endfor %}={{ ns.n }}");
  EXPECT_EQ(t.render({{"xs", {1, 2}}}), "1+2=3");
  EXPECT_EQ(t.render({{"xs", {1, 2}}}), "1+2=3");  // no state kept between renders
  std::vector<std::thread> threads;
  std::vector<std::string> results(4);
  for (int i = 0; i < 4; i++) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; k++) results[size_t(i)] = t.render({{"xs", {i, 1}}});
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 4; i++) EXPECT_EQ(results[size_t(i)], std::to_string(i) + "+1=" + std::to_string(i + 1));
}

TEST(JinjaTemplate, ContextMustBeAnObject) {
  EXPECT_EQ(Template("x{{ y }}").render(nullptr), "x");
  EXPECT_THROW(Template("x").render(json::array()), TemplateError);
}

}  // namespace
}  // namespace pocket::jinja
