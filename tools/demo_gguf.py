"""Minimal GGUF v3 reader/writer (spec/gguf.md section 3) for the demo-model tools.

Only what the demo model needs: scalar/string/array metadata, F32/F16 tensors.
"""
import struct

import numpy as np

ALIGN = 32
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
           T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
GGML_F32, GGML_F16 = 0, 1


class _Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.p:self.p + n].decode("utf-8", errors="surrogateescape")
        self.p += n
        return s

    def value(self, t):
        if t == T_STR:
            return self.string()
        if t == T_ARR:
            et, n = self.take("<i"), self.take("<Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(_SCALAR[t])


def read_gguf(path, want_tensors=False):
    """Returns (metadata: {key: (type, value)}, tensors: {name: np.ndarray} or infos)."""
    data = open(path, "rb").read()
    r = _Reader(data)
    assert data[:4] == b"GGUF"
    r.p = 4
    ver, nt, nkv = r.take("<I"), r.take("<q"), r.take("<q")
    assert ver == 3
    meta = {}
    for _ in range(nkv):
        k = r.string()
        t = r.take("<i")
        meta[k] = (t, r.value(t))
    infos = []
    for _ in range(nt):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<q") for _ in range(nd)]
        typ, off = r.take("<i"), r.take("<Q")
        infos.append((name, ne, typ, off))
    start = (r.p + ALIGN - 1) // ALIGN * ALIGN
    tensors = {}
    if want_tensors:
        for name, ne, typ, off in infos:
            n = int(np.prod(ne))
            dt = {GGML_F32: np.float32, GGML_F16: np.float16}[typ]
            a = np.frombuffer(data, dtype=dt, count=n, offset=start + off)
            tensors[name] = a.reshape(list(reversed(ne))).astype(np.float32)
    return meta, (tensors if want_tensors else infos)


def _w_str(out, s):
    b = s.encode("utf-8", errors="surrogateescape")
    out += struct.pack("<Q", len(b)) + b


def _w_val(out, t, v):
    if t == T_STR:
        _w_str(out, v)
    elif t == T_ARR:
        et, items = v
        out += struct.pack("<iQ", et, len(items))
        if et in _SCALAR:
            out += np.asarray(items, dtype=np.dtype(_SCALAR[et][1:]).newbyteorder("<")).tobytes() \
                if et != T_BOOL else bytes(1 if x else 0 for x in items)
        else:
            for x in items:
                _w_val(out, et, x)
    elif t == T_BOOL:
        out += struct.pack("<B", 1 if v else 0)
    else:
        out += struct.pack(_SCALAR[t], v)


def write_gguf(path, meta, tensors):
    """meta: list of (key, type, value); tensors: list of (name, np.ndarray, ggml_type).
    The numpy array shape is the reversed GGUF ne (row-major, like HF)."""
    out = bytearray(b"GGUF")
    out += struct.pack("<Iqq", 3, len(tensors), len(meta))
    for k, t, v in meta:
        _w_str(out, k)
        out += struct.pack("<i", t)
        _w_val(out, t, v)
    blobs, off = [], 0
    for name, arr, typ in tensors:
        a = np.ascontiguousarray(arr, dtype={GGML_F32: np.float32, GGML_F16: np.float16}[typ])
        ne = list(reversed(a.shape))
        _w_str(out, name)
        out += struct.pack("<I", len(ne))
        for n in ne:
            out += struct.pack("<q", n)
        out += struct.pack("<iQ", typ, off)
        b = a.tobytes()
        pad = (-len(b)) % ALIGN
        blobs.append(b + b"\0" * pad)
        off += len(b) + pad
    out += b"\0" * ((-len(out)) % ALIGN)
    for b in blobs:
        out += b
    with open(path, "wb") as f:
        f.write(out)
