"""Regenerates the golden files in this directory with Debian's python3-celery 5.2.6.

Run: /usr/bin/python3 gen_golden.py   (from this directory)
"""
import json
from celery.utils.saferepr import saferepr

SAFEREPR_ARGS = [
    '[]', '[2]', '[2, 3]', '["a\'b"]', '["line\\nbreak", "tab\\t"]', '[null, true, false]',
    '[1.5, 3.0, 1e20, 1e16, 1e15, 0.0001, 0.00001, -0.0, 1e-7, 123456789012345678901234567890]',
    '[[1, [2, [3, [4]]]]]', '[{"a": {"b": {"c": {"d": 1}}}}]', '[[]]', '[{}]',
    '["' + 'x' * 2000 + '"]', '["' + ('word ' * 300) + '"]', '[' + ', '.join(['1234567890'] * 150) + ']',
    '[{"k": "' + 'y' * 1100 + '"}, 5]', '[["' + 'z' * 1018 + '"], 1]',
    '["\\u00fc\\ud83d\\ude80", "\\u0000\\u007f\\u00a0"]', '["\\"dq\\"", "both\'\\""]',
    '[' + ', '.join(['"abcdefghij"'] * 100) + ']', '[' + ', '.join(['[1, 2]'] * 300) + ']',
    '[' + '1' * 1030 + ']', '["' + 'a' * 1019 + '", [1]]', '["' + 'a' * 1020 + '", [1]]',
    '["' + 'a' * 1016 + '", {"b": 1}]', '["' + 'a' * 1017 + '", {"b": 1}]', '["' + 'a' * 1018 + '", {"b": 1}]',
    '[' + '1' * 1021 + ', 2]', '[' + '1' * 1020 + ', 2]',
]
SAFEREPR_KWARGS = [
    '{}', '{"a": 1}', '{"a": 1, "a": 2, "b": 3}', '{"s": "\\u00fc", "n": [1, 2.5, null]}',
    '{"k": {"x": {"y": {"z": {}}}}}', '{"' + 'K' * 1030 + '": 1}', '{"a": "' + 'v' * 1019 + '", "b": 2}',
    '{"a": "' + 'v' * 1010 + '", "' + 'b' * 20 + '": 2}',
]
REPR = [
    '"a\'b\\"c"', '"back\\\\slash"', '"\\ud800x"', '"\\udfff\\ud800"', '"\\u00ad\\u2028\\u0085\\u00e9\\u200b"',
    '"\\ud83d\\ude80\\u0001\\u001f\\u007e"', '"\\uffff\\ufffe\\ue000"', '"\'"', '"\\""', '"\'\\""',
    '"\\u00a0 \\t\\n\\r\\u000b"', '1e400', '-1e400', '1E5', '-0', '-0.0', '0.1', '2.675', '1.7976931348623157e308',
    '5e-324', '123.456e-10', '9007199254740993', '-12345678901234567890123',
    '[1, "x", null, [true, false], {"a": [], "b": {}}]', '{"a": 1, "b": 2, "a": 3}', '{"\\u00fc": "\\u00fc"}',
    '12345678901234567', '1e16', '1e15', '0.0001', '0.00001', '100.0', '1.0e-4', '1e22', '1e23', '-2.5e-5',
]
PYJSON = [
    '[1,2,{"a":[],"b":{}}]', '{"b": 1, "a": 2}', '"\\u00FC\\u00fc/\\/"', '"\\ud83d\\ude80"', '"\\ud800"',
    '"\\udc00\\ud800"', '"\u00fc\u65e5\U0001F680"', '"\\u0000\\u001f\\u007f\\u0080\\b\\f\\n\\r\\t\\"\\\\"',
    '[1E5, 1e-7, -0, -0.0, 0.5, 100, 1.10, 2.50e2, 123456789012345678901234567890]',
    ' { "a" : [ 1 , 2 ] , "c" : { } , "d" : [ ] } ', '{"a": 1, "a": 2}', '[true, false, null]',
    '"<>&\\u2028\\u2029"', '[9007199254740993, -9007199254740993, 1.7976931348623157e308, 5e-324]',
]

def main():
    cases = []
    for c in SAFEREPR_ARGS:
        v = json.loads(c)
        cases.append({'kind': 'args', 'json': c, 'saferepr': saferepr(tuple(v), 1024),
                      'saferepr_list': saferepr(v), 'repr': repr(v)})
    for c in SAFEREPR_KWARGS:
        v = json.loads(c)
        cases.append({'kind': 'kwargs', 'json': c, 'saferepr': saferepr(v, 1024),
                      'saferepr_list': saferepr(v), 'repr': repr(v)})
    for c in REPR:
        cases.append({'kind': 'value', 'json': c, 'repr': repr(json.loads(c))})
    with open('repr_golden.json', 'w') as f:
        json.dump(cases, f, indent=1, ensure_ascii=True)
        f.write('\n')
    out = [{'in': c, 'out': json.dumps(json.loads(c))} for c in PYJSON]
    with open('pyjson_golden.json', 'w') as f:
        json.dump(out, f, indent=1, ensure_ascii=True)
        f.write('\n')

if __name__ == '__main__':
    main()
