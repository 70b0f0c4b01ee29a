//! Differential tests of the Lua libraries upstream exposes to scripts (`cjson`,
//! `cmsgpack`, `struct`, `bit`, and its `math.random`): every script of the corpus
//! runs through `EVAL <script> 0` on valkey-rs and on the reference, and the raw
//! reply bytes (values or error text) must be identical.
//!
//! The scripts return their values through a one-line `dump` prelude (numbers
//! with `%.17g`, strings with `%q`, tables with sorted keys) so that the
//! comparison sees exact doubles and whole tables, not EVAL's integer and
//! array conversions; the prelude is on the script's first line, so error
//! positions stay `user_script:1:`. Objects with several keys are never encoded
//! to JSON here (their key order is the hash order of the Lua state).
//!
//! Environment: `VALKEY_REF` (path of the reference), `VALKEY_REF_SKIP=1` (pass
//! when the reference is missing).

mod common;

use common::{escape_short, Conn, Server};

/// `dump(v)` and `all(...)`: a deterministic text for any values.
const PRELUDE: &str = "local function dump(v, d) d = d or 0 local t = type(v) \
    if t == 'string' then return string.format('%q', v) \
    elseif t == 'number' then return string.format('%.17g', v) \
    elseif t == 'table' then if d > 40 then return '{...}' end \
    local keys = {} for k in pairs(v) do keys[#keys + 1] = k end \
    table.sort(keys, function(a, b) return type(a) .. tostring(a) < type(b) .. tostring(b) end) \
    local out = {} for _, k in ipairs(keys) do out[#out + 1] = '[' .. dump(k, d + 1) .. ']=' .. dump(v[k], d + 1) end \
    return '{' .. table.concat(out, ',') .. '}' \
    elseif v == nil then return 'nil' elseif v == cjson.null then return 'null' \
    elseif t == 'boolean' then return tostring(v) else return t end end \
    local function all(...) local n = select('#', ...) local r = {...} local o = {} \
    for i = 1, n do o[i] = dump(r[i]) end return table.concat(o, ' ') end \
    local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end ";

/// Expressions whose values (or error) are compared: the script is
/// `PRELUDE return all(<expr>)`.
const CJSON: &[&str] = &[
    "cjson.encode({1,2,3,nil,5})",
    "cjson.encode({[1]=1,[20]=2})",
    "cjson.encode({a=1/0})",
    "cjson.encode(1e100), cjson.encode(-0), cjson.encode(1e-300), cjson.encode(0.1), cjson.encode(1/3)",
    "cjson.encode(123456789012345678), cjson.encode(2^53), cjson.encode(-2^63)",
    "cjson.encode('a/b\"\\1'), cjson.encode('\\127\\8\\12\\n\\r\\t\\\\\\0\\31 \\200\\255')",
    "cjson.encode(function() end)",
    "cjson.encode(coroutine.create(function() end))",
    "cjson.encode({[true]=1})",
    "cjson.encode({[1/0]=1})",
    "cjson.encode({}), cjson.encode({{}}), cjson.encode({a={}})",
    "cjson.encode({[1]=1,[2]=2,[4]=4}), cjson.encode({[2.5]=1}), cjson.encode({[2^31]=1}), cjson.encode({[-1]=1})",
    "cjson.encode({a={b={true,false,cjson.null}}})",
    "cjson.encode(cjson.null), cjson.encode(nil), cjson.encode(true)",
    "cjson.encode()",
    "cjson.encode(1, 2)",
    "cjson.decode('{')",
    "cjson.decode('[1,2')",
    "cjson.decode('nul')",
    "cjson.decode('[1] x')",
    "cjson.decode('{\"a\" 1}')",
    "cjson.decode('{\"a\":1 ]')",
    "cjson.decode('\"abc')",
    "cjson.decode('\"a\\\\qb\"')",
    "cjson.decode('\"\\\\ud800x\"')",
    "cjson.decode('\"\\\\udc00\"')",
    "cjson.decode('\"\\\\u12\"')",
    "cjson.decode('-')",
    "cjson.decode(']')",
    "cjson.decode('\\0a')",
    "cjson.decode('')",
    "cjson.decode(nil)",
    "cjson.decode({})",
    "cjson.decode()",
    "cjson.decode('1e400'), cjson.decode('-1e400'), cjson.decode('0x10'), cjson.decode('-Infinity')",
    "cjson.decode('NaN') ~= cjson.decode('NaN'), cjson.decode('+5'), cjson.decode('007'), cjson.decode('1.5e3')",
    "cjson.decode('[1]\\0garbage'), cjson.decode('  \"x\"  '), cjson.decode(123)",
    "cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\\\\n\\\\/\\\\b\\\\f\\\\r\\\\t\\\\u0000\"')",
    "cjson.decode('{\"a\":[1,{\"b\":null}],\"c\":{\"d\":true,\"e\":false},\"f\":\"g\"}')",
    "cjson.decode('{\"a\":1,\"a\":2}'), cjson.decode('[]'), cjson.decode('{}')",
    "cjson.decode('[1,]')",
    "cjson.decode('{\"a\":1,}')",
    "cjson.decode('{1:2}')",
    "cjson.decode('truex')",
    "cjson.decode('tru')",
    "cjson.decode('1.5.5')",
    "cjson.decode(string.rep('[', 2000))",
    "cjson.decode(string.rep('{\"a\":', 2000))",
    "cjson.decode(cjson.encode({1,{2,{3,{'x'}}}}))",
    "cjson._NAME, cjson._VERSION, cjson.null == cjson.null",
    "cjson.encode_sparse_array(), cjson.encode_max_depth(), cjson.decode_max_depth()",
    "cjson.encode_number_precision(), cjson.encode_keep_buffer(), cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers()",
    "cjson.encode_sparse_array(1)",
    "cjson.encode_sparse_array(true, -1)",
    "cjson.encode_sparse_array(true, 1, 2, 3)",
    "cjson.encode_number_precision(15)",
    "cjson.encode_number_precision(0)",
    "cjson.encode_max_depth({})",
    "cjson.encode_invalid_numbers('maybe')",
    "cjson.encode_keep_buffer('on'), cjson.encode_keep_buffer(false), cjson.encode_keep_buffer(true)",
    "cjson.new().encode_number_precision(3)",
    "cjson.new().encode(1/3), cjson.new()._NAME",
    "local c = cjson.new() c.encode_number_precision(3) return c.encode(1/3), cjson.encode(1/3)",
    "local c = cjson.new() c.encode_sparse_array(true) return c.encode({[1]=1,[20]=2})",
    "local c = cjson.new() c.encode_sparse_array(false, 0) return c.encode({[1]=1,[20]=2})",
    "local c = cjson.new() c.encode_invalid_numbers('null') return c.encode({1/0, 0/0})",
    "local c = cjson.new() c.encode_invalid_numbers(true) return c.encode({1/0, -1/0})",
    "local c = cjson.new() c.decode_invalid_numbers(false) return pcall(c.decode, '0x10')",
    "local c = cjson.new() c.decode_invalid_numbers(false) return pcall(c.decode, '+1')",
    "local c = cjson.new() c.decode_invalid_numbers(false) return pcall(c.decode, '-inf')",
    "local c = cjson.new() c.encode_max_depth(2) return pcall(c.encode, {{{1}}})",
    "local c = cjson.new() c.decode_max_depth(2) return pcall(c.decode, '[[[1]]]')",
    "local t = {} t[1] = t return cjson.encode(t)",
    "pcall(cjson.encode)",
    "cjson.encode({[11]=1})",
    "cjson.encode({[10]=1}), cjson.encode({[3]='x'})",
    "cjson.encode({[0]=1})",
    "cjson.encode({'a', {['1']=2}}), cjson.encode({[1.0]=5, [2]=6})",
    "cjson.decode('1E5'), cjson.decode('-0'), cjson.decode('1e-400'), cjson.decode('0.0'), cjson.decode('5.')",
    "cjson.decode('.5')",
    "cjson.decode('\\f1')",
    "cjson.decode('1_000')",
    "cjson.decode('12345678901234567890'), cjson.decode(' \\t\\r\\n[ 1 , 2 ] ')",
    "cjson.decode('infinity'), cjson.decode('Inf'), cjson.decode('-INF'), cjson.decode('0X1p4')",
    "cjson.decode('nan') ~= cjson.decode('nan'), cjson.decode('-nan') ~= 0",
    "cjson.decode('nanx')",
    "cjson.decode('[true,false,null]')",
    "cjson.decode('[1 2]')",
    "cjson.decode('\"\\\\u0041\\\\u00\"')",
    "cjson.decode('\"\\\\uD834\\\\uDD1E\"')",
    "cjson.decode('\"\\\\ud834\\\\u0041\"')",
    "cjson.decode('\"\\1\\2\"'), cjson.decode('\"\\255\\254\"')",
    "cjson.decode('[\"a\",{\"b\":[{}]}]')",
    "cjson.encode(cjson.decode('[1e308, -1e-308, 5e-324, 1.7976931348623157e308]'))",
    "cjson.encode({1, 2, 'three', {four = 4}})",
];

const CMSGPACK: &[&str] = &[
    "hex(cmsgpack.pack(1.5, 0.1, -1, -33, 128, 65536, 2^32, -2^31-1, 2^63, -2^63, 1/0, 0/0, true, false, nil, 'ab'))",
    "hex(cmsgpack.pack({}, {1,2}, {a=1}, {[1]=1,[3]=3}, {[2^31]=1}, string.rep('x', 40)))",
    "hex(cmsgpack.pack(1e-300, -0, 127, -32, 255, -128, 65535, -32768, 2^32-1, -2^31, 2^53, -2^53, 3.25))",
    "hex(cmsgpack.pack(string.rep('y', 31))), hex(cmsgpack.pack(string.rep('y', 32))):sub(1, 8)",
    "hex(cmsgpack.pack(string.rep('y', 256))):sub(1, 8), hex(cmsgpack.pack(string.rep('y', 65536))):sub(1, 12)",
    "local t = {} for i = 1, 16 do t[i] = i end return hex(cmsgpack.pack(t)):sub(1, 8)",
    "local t = {} for i = 1, 65536 do t[i] = 0 end return hex(cmsgpack.pack(t)):sub(1, 12)",
    "local t = {} for i = 1, 16 do t['k' .. i] = i end return hex(cmsgpack.pack(t)):sub(1, 6)",
    "local t = {} t[1] = t return hex(cmsgpack.pack(t))",
    "hex(cmsgpack.pack(function() end, coroutine.create(function() end), cjson.null))",
    "cmsgpack.pack()",
    "cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, {four = 4}}, true, false, 2.5, -1e300, 1e-300))",
    "cmsgpack.unpack(cmsgpack.pack({a = {b = {c = {1, 2, 3}}}, [5] = 'x'}))",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2))",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2), 1)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -5)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 10)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)",
    "cmsgpack.unpack_one()",
    "cmsgpack.unpack_one('\\1', 'x')",
    "cmsgpack.unpack_limit('a')",
    "cmsgpack.unpack()",
    "cmsgpack.unpack(12), cmsgpack.unpack('')",
    "cmsgpack.unpack('\\196')",
    "cmsgpack.unpack('\\196\\1a')",
    "cmsgpack.unpack('\\193')",
    "cmsgpack.unpack('\\199\\1\\1a')",
    "cmsgpack.unpack('\\205\\1')",
    "cmsgpack.unpack('\\221\\255\\255\\255\\255')",
    "cmsgpack.unpack('\\219\\255\\255\\255\\255')",
    "cmsgpack.unpack('\\223\\255\\255\\255\\255')",
    "cmsgpack.unpack('\\218\\255\\255ab')",
    "cmsgpack.unpack('\\217\\5ab')",
    "cmsgpack.unpack('\\165ab')",
    "cmsgpack.unpack('\\147\\1\\2')",
    "cmsgpack.unpack('\\129\\192\\1')",
    "cmsgpack.unpack('\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1')",
    "cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255'), cmsgpack.unpack('\\211\\128\\0\\0\\0\\0\\0\\0\\1')",
    "cmsgpack.unpack('\\204\\200\\208\\200\\205\\255\\255\\209\\128\\0\\206\\255\\255\\255\\255\\210\\128\\0\\0\\0')",
    "cmsgpack.unpack('\\202\\127\\192\\0\\0\\203\\63\\240\\0\\0\\0\\0\\0\\0\\224\\255\\127')",
    "#cmsgpack.unpack(string.rep('\\145', 5000) .. '\\1')",
    "#cmsgpack.unpack(string.rep('\\129\\1', 5000) .. '\\1')",
    "select('#', cmsgpack.unpack(string.rep('\\1', 8000)))",
    "select('#', cmsgpack.unpack(string.rep('\\1', 7990)))",
    "cmsgpack.pack(unpack({}, 1, 5000))",
    "cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION, cmsgpack._NAME",
    "hex(cmsgpack.pack(string.rep('z', 255))):sub(1, 6), hex(cmsgpack.pack(string.rep('z', 256))):sub(1, 8)",
    "hex(cmsgpack.pack(string.rep('z', 65535))):sub(1, 8), hex(cmsgpack.pack(string.rep('z', 65536))):sub(1, 12)",
    "local t = {} for i = 1, 65535 do t[i] = 0 end return hex(cmsgpack.pack(t)):sub(1, 8)",
    "local t = {} for i = 1, 15 do t['k' .. i] = i end return hex(cmsgpack.pack(t)):sub(1, 2)",
    "local t = {{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}} return hex(cmsgpack.pack(t))",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 'ab', 3), 1, 2)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2), -1)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2), 5)",
    "cmsgpack.unpack_one(cmsgpack.pack({1, {2}}, 'x'), 4)",
    "cmsgpack.unpack(cmsgpack.pack({[1] = 'a', [2] = 'b', x = 'y'}))",
    "cmsgpack.unpack(cmsgpack.pack({[-1] = 1, [0] = 2, [0.5] = 3}))",
    "cmsgpack.unpack('\\129\\145\\1\\2')",
    "cmsgpack.unpack('\\145\\192')",
    "cmsgpack.unpack('\\146\\192\\1')",
    "cmsgpack.unpack_limit('\\1\\2\\3', 2.9), cmsgpack.unpack_one('\\1\\2', 1.5)",
    "cmsgpack.unpack_limit('\\1\\2\\3', '2')",
    "cmsgpack.unpack_limit('\\1', {})",
];

const STRUCT: &[&str] = &[
    "hex(struct.pack('<i9', -1)), hex(struct.pack('<I8', 1e300)), hex(struct.pack('<I8', 2^63)), hex(struct.pack('<I8', 2^64))",
    "hex(struct.pack('<I8', -0.5)), hex(struct.pack('>!4bi>d', 1, 2, 3.5)), hex(struct.pack('<f', 1.5)), hex(struct.pack('<I', -1))",
    "hex(struct.pack('<i', 2^40+3)), hex(struct.pack('<i', 1e300)), hex(struct.pack('<i', -1e300)), hex(struct.pack('<i', 0/0))",
    "hex(struct.pack('s', 'ab\\0c')), hex(struct.pack('!4 b i', 1, 2)), hex(struct.pack('!2bi', 1, 2)), hex(struct.pack('x', 1, 2))",
    "hex(struct.pack('i0', 5)), hex(struct.pack('c0', 'abc')), hex(struct.pack('T', 5)), hex(struct.pack('>i16', -2))",
    "hex(struct.pack('bBhHlLTiI', -1, 255, -2, 65535, -3, 2^40, 7, -4, 5))",
    "hex(struct.pack('>bBhHlLTiI', -1, 255, -2, 65535, -3, 2^40, 7, -4, 5))",
    "hex(struct.pack('!bhbibdbf', 1, 2, 3, 4, 5, 6, 7, 8))",
    "hex(struct.pack('c3', 12345)), hex(struct.pack('i3 i5 i7', -1, -1, -1))",
    "struct.unpack('<i9', string.rep('\\255', 9))",
    "struct.unpack('<i9', '\\0\\0\\0\\0\\0\\0\\0\\128\\1')",
    "struct.unpack('>i9', '\\1\\0\\0\\0\\0\\0\\0\\0\\1')",
    "struct.unpack('<I16', string.rep('\\255', 16)), struct.unpack('<i16', string.rep('\\255', 16))",
    "struct.unpack('Bc0', '\\2abc'), struct.unpack('c1c0', '3abcdefg')",
    "struct.unpack('>!4bxd', struct.pack('>!4bxd', 1, 2.5))",
    "struct.unpack('b', '\\200', 1.9), struct.unpack('x', 'a'), struct.unpack('xb', 'ab'), struct.unpack('', '')",
    "struct.unpack('', 'a', 10), struct.unpack('i0', 'ab'), struct.unpack('<h', '\\255\\255'), struct.unpack('s', 'ab\\0c')",
    "struct.unpack('<f', struct.pack('<f', 1.5)), struct.unpack('<d', struct.pack('<d', 1e-300)), struct.unpack('>d', struct.pack('>d', -0))",
    "struct.unpack('bBhHlLTiI', struct.pack('bBhHlLTiI', -1, 255, -2, 65535, -3, 2^40, 7, -4, 5))",
    "struct.unpack('!bhbibdbf', struct.pack('!bhbibdbf', 1, 2, 3, 4, 5, 6, 7, 8))",
    "struct.unpack('i3i5i7', struct.pack('i3i5i7', -1, -100000, 2^40))",
    "struct.size('i4d'), struct.size('!bxi'), struct.size('c'), struct.size('!'), struct.size('!16d'), struct.size('y'), struct.size('i0')",
    "struct.size('c2147483647c2147483647c2147483647'), struct.size('!4bi!2bi!bd'), struct.size('i32')",
    "struct.unpack('>I2', 'a')",
    "struct.unpack('<i33', 'a')",
    "struct.pack('i2147483648', 1)",
    "struct.pack('i2147483647', 1)",
    "struct.pack('c2147483647', 'a')",
    "struct.pack('c99999999999', 'a')",
    "struct.unpack('c2147483647', 'a')",
    "struct.unpack('c2147483646c2147483646', 'abc')",
    "struct.size('!2147483648')",
    "struct.pack('!3i', 1)",
    "struct.size('!0bi')",
    "struct.size('!17d')",
    "struct.pack('y', 1)",
    "struct.pack(1, 1)",
    "struct.size('=')",
    "struct.size('s')",
    "struct.size('c0')",
    "struct.unpack('c0', 'abc')",
    "struct.unpack('c1c0', 'a5bcdefg')",
    "struct.unpack('Bc0', '\\255abc')",
    "struct.unpack('s', 'abc')",
    "struct.unpack('i', 'abcd', 0)",
    "struct.unpack('i', 'abcd', 5)",
    "struct.unpack('b', 'a', 2^53)",
    "struct.unpack('b', 'a', -2^63)",
    "struct.unpack('x', '')",
    "struct.pack('c3', 'ab')",
    "struct.pack('c2', {})",
    "struct.pack('i', 'x')",
    "struct.pack('i')",
    "struct.pack('i', '12'), struct.pack('c2', 12)",
    "struct.unpack('i', 'abcd', 'x')",
    "struct.unpack('i')",
    "struct.unpack(nil, 'a')",
    "struct.unpack('i\\0i', 'abcdefgh')",
    "struct.unpack(string.rep('b', 9000), string.rep('a', 9000))",
    "select('#', struct.unpack(string.rep('b', 7000), string.rep('a', 7000)))",
    "hex(struct.pack('<lLhHbB', -5, 2^64 - 1, 70000, -1, -129, 256))",
    "struct.unpack('<lLhHbB', struct.pack('<lLhHbB', -5, 2^63, -300, 65535, 127, 255))",
    "hex(struct.pack('>i3<i3', 0x123456, 0x123456)), hex(struct.pack('<!8bd', 1, 2))",
    "hex(struct.pack('<I32', 2^60)), struct.unpack('>I32', struct.pack('>I32', 2^60))",
    "struct.unpack('<I9', string.rep('\\255', 8) .. '\\1'), struct.unpack('>i12', string.rep('\\0', 11) .. '\\255')",
    "struct.unpack('<i12', string.rep('\\0', 11) .. '\\255'), struct.unpack('<i10', string.rep('\\255', 10))",
    "struct.unpack('s', 'abc\\0def\\0', 5), struct.unpack('c2', 'abcd', 3)",
    "struct.pack('s', 5), struct.unpack('ss', 'a\\0\\0')",
    "struct.unpack('!4bi', '\\1\\0\\0\\0\\2\\0\\0\\0'), struct.unpack('!4bi', '\\1\\0\\0\\0\\2\\0\\0')",
    "struct.size('!8bd!2bd!1bd')",
    "struct.unpack('c0', '', 1)",
    "struct.unpack('c', '')",
];

const BIT: &[&str] = &[
    "bit.tobit(2^32+5), bit.tobit('0x10'), bit.tobit(2^31), bit.tobit(0/0), bit.tobit(1e300), bit.tobit(-0.5)",
    "bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), bit.tobit(0), bit.tobit(-2^31-1), bit.tobit(2^52+2^51)",
    "bit.bnot(0), bit.bnot(-1), bit.band(0xff, 0x0f, 0x3), bit.bor(1), bit.bor(1, 2, 4), bit.bxor(7, 2, 1)",
    "bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.lshift(1, -1), bit.rshift(-256, 4), bit.arshift(-256, 4)",
    "bit.rol(1, 32), bit.rol(0x12345678, 4), bit.ror(1, 1), bit.ror(0x12345678, 36), bit.bswap(0x12345678), bit.bswap(-1)",
    "bit.tohex(65535, -2147483648), bit.tohex(-1, 2147483647), bit.tohex(255, -3), bit.tohex(255, 0), bit.tohex(255)",
    "bit.tohex(0x12345678, 4), bit.tohex(-1, -9), bit.tohex(1, 2^32+3), bit.tohex(2^40)",
    "bit.tohex(255, nil)",
    "bit.band(1, {})",
    "bit.band(1, {}, {})",
    "bit.band()",
    "bit.tohex(1, 'a')",
    "bit.tobit(nil)",
    "bit.lshift(1)",
    "pcall(bit.bnot)",
    "bit.band('0xff', '15'), bit.bor('1', 2), bit.tohex('255'), bit.tobit('  12  ')",
    "bit.tobit('12a')",
    "bit.band(1, nil)",
    "bit.bxor(1, true)",
    "bit.arshift(2^31, 31), bit.rshift(2^31, 31), bit.lshift(3, 30), bit.rol(-1, 7), bit.ror(2, 33)",
];

/// Scripts with no value to compare but that must leave both servers alive.
const HOSTILE: &[&str] = &[
    "local s = string.rep('[', 100000) return pcall(cjson.decode, s)",
    "local s = string.rep('{\"a\":', 100000) return pcall(cjson.decode, s)",
    "cjson.encode_max_depth(2147483647) local t = {} t[1] = t local r = {pcall(cjson.encode, t)} cjson.encode_max_depth(1000) return unpack(r)",
    "cjson.decode_max_depth(2147483647) local r = {pcall(cjson.decode, string.rep('[', 100000))} cjson.decode_max_depth(1000) return unpack(r)",
    "local t = {} local c = t for i = 1, 100000 do c.a = {} c = c.a end return pcall(cjson.encode, t)",
    "local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end return #cmsgpack.pack(t)",
    "return pcall(cmsgpack.unpack, string.rep('\\145', 100000))",
    "return pcall(cmsgpack.unpack, string.rep('\\221\\255\\255\\255\\255', 1000))",
    "return pcall(cmsgpack.unpack, string.rep('\\223\\127\\255\\255\\255', 1000))",
    "return pcall(cmsgpack.unpack, '\\219\\127\\255\\255\\255abc')",
    "local s = cmsgpack.pack({1, 2, {3, 4}, 'five'}) local r = {} for i = 0, #s - 1 do r[#r + 1] = tostring(select(2, pcall(cmsgpack.unpack, s:sub(1, i)))) end return table.concat(r, ';')",
    "return pcall(struct.pack, 'c2147483647c2147483647', 'a', 'b')",
    "return pcall(struct.unpack, 'i32i32i32', string.rep('x', 95))",
    "return pcall(struct.unpack, 'c2147483647', string.rep('x', 100), 2147483647)",
    "return pcall(struct.unpack, 'b', 'x', 2^62)",
    "return pcall(struct.pack, string.rep('!2147483647', 3))",
    "return pcall(struct.size, string.rep('c2147483647', 10000))",
    "return pcall(struct.pack, string.rep('x', 100000) .. 'i99999999999')",
    "return bit.tohex(-1, -2147483648), bit.tohex(-1, 2147483648), bit.tohex(-1, -2^63)",
    "local ok, e = pcall(cjson.decode, '\"' .. string.rep('\\\\u', 50000)) return ok, e",
    "return #cjson.encode(string.rep('\\1', 200000))",
];

/// Runs `EVAL <PRELUDE return all(expr)> 0` (or the script as given when it
/// starts with `local` / `return`).
fn script_for(expr: &str) -> String {
    if expr.starts_with("local ")
        || expr.starts_with("return ")
        || expr.starts_with("cjson.encode_max_depth(")
        || expr.starts_with("cjson.decode_max_depth(")
    {
        // A statement list: its returned values go through `all` as well.
        format!("{PRELUDE} return all((function() {expr} end)())")
    } else {
        format!("{PRELUDE} return all({expr})")
    }
}

fn eval(c: &mut Conn, script: &str) -> Vec<u8> {
    c.call(&["EVAL", script, "0"])
}

/// Runs every expression on both servers; returns the mismatches.
fn compare(ours: &mut Conn, reference: &mut Conn, corpus: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for expr in corpus {
        let script = script_for(expr);
        let want = eval(reference, &script);
        let got = eval(ours, &script);
        if got != want {
            bad.push(format!(
                "{expr}\n    ours:      {}\n    reference: {}",
                escape_short(&got, 400),
                escape_short(&want, 400)
            ));
        }
    }
    bad
}

fn run_corpus(corpus: &[&str]) {
    let Some(ref_bin) = common::require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&ref_bin, &[]);
    let (mut a, mut b) = (ours.conn(), reference.conn());
    let bad = compare(&mut a, &mut b, corpus);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        corpus.len(),
        bad.join("\n")
    );
}

#[test]
fn cjson_matches_reference() {
    run_corpus(CJSON);
}

#[test]
fn cmsgpack_matches_reference() {
    run_corpus(CMSGPACK);
}

#[test]
fn struct_matches_reference() {
    run_corpus(STRUCT);
}

#[test]
fn bit_matches_reference() {
    run_corpus(BIT);
}

/// Crafted inputs (deep nesting, truncated msgpack, lengths announcing
/// gigabytes, struct counts near `INT_MAX`): same replies, and both servers
/// still answer afterwards.
#[test]
fn hostile_inputs_match_reference() {
    let Some(ref_bin) = common::require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&ref_bin, &[]);
    let (mut a, mut b) = (ours.conn(), reference.conn());
    let bad = compare(&mut a, &mut b, HOSTILE);
    assert_eq!(a.call(&["PING"]), b"+PONG\r\n".to_vec(), "valkey-rs died");
    assert_eq!(b.call(&["PING"]), b"+PONG\r\n".to_vec(), "reference died");
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        HOSTILE.len(),
        bad.join("\n")
    );
}

/// math.random after a fresh start of both servers: one generator, not reseeded
/// per script, continued across EVALs; randomseed; the errors (which still draw).
#[test]
fn math_random_sequence_matches_reference() {
    let Some(ref_bin) = common::require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&ref_bin, &[]);
    let (mut a, mut b) = (ours.conn(), reference.conn());
    let corpus: &[&str] = &[
        "math.random(), math.random(), math.random(100)",
        "math.random(), math.random(5, 10), math.random(1), math.random(-3, -3)",
        "math.random(-2147483648, 2147483647), math.random(2^31 - 1), math.random(0.5 + 2)",
        "math.random(0)",
        "math.random(3, 2)",
        "math.random(1, 2, 3)",
        "math.random('x')",
        "math.random()",
        "math.randomseed(7)",
        "math.random(), math.random(5, 10)",
        "math.randomseed(-1), math.random(), math.random(1000000)",
        "math.randomseed(2^40 + 3), math.random()",
        "math.randomseed()",
        "math.randomseed('x')",
        "local r = {} for i = 1, 200 do r[i] = math.random(1000) end return table.concat(r, ',')",
    ];
    let bad = compare(&mut a, &mut b, corpus);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        corpus.len(),
        bad.join("\n")
    );
}
