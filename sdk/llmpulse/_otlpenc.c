/*
 * llmpulse._otlpenc: span records -> an OTLP ExportTraceServiceRequest protobuf body, in C.
 *
 * The pure-Python reference is _otlp.py's ProtobufEncoder._encode_python (its module docstring
 * states the output contract: canonical protobuf, values mapped by type, lone surrogates
 * replaced). This writes the same bytes in one pass over the records, without the per-piece
 * bytes objects and joins. The contract, checked by tests/sdk/test_otlpenc.py against the
 * reference on generated batches:
 *
 *   encode(spans, resource_field, scope_field) -> bytes | None
 *
 * returns exactly the bytes ProtobufEncoder._encode_python(spans) returns for an encoder
 * whose ResourceSpans.resource and ScopeSpans.scope fields (tag included) are resource_field
 * and scope_field, or None when the batch holds anything this leaves to the reference, which
 * then encodes the whole batch (and raises where it raises). Handled here: a list or tuple of
 * SpanRecords (the exact class) with int ids and times in range, SpanEvents, attributes in a
 * dict or SharedAttributes with str keys and values of the exact types str, bool, int (outside
 * int64 as its decimal string), float, bytes, bytearray, and list/tuple of those nested below
 * the reference's depth limit. Left to the reference: subclasses and every other type (their
 * str() or overridden methods run Python code), ids or times out of range or not ints (the
 * reference raises), kinds and status codes of 2**64 and more, memoryviews, a SharedAttributes
 * whose kept encoding is not bytes, an int too long for str().
 *
 * SharedAttributes: their encoded attribute fields are kept in their "pb" attribute, as the
 * reference keeps them; this reads and sets it too, so both paths agree on attributes that
 * changed after their first encoding (read-only by contract).
 *
 * Only exact types are read, so none of the application's Python code runs while a batch is
 * encoded; the values in use are held by strong references all the same.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Doubles and fixed64 fields are written with memcpy: little-endian only. A big-endian build
   fails here, and setup.py's optional extension leaves such hosts on the pure-Python reference. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "_otlpenc writes protobuf doubles and fixed64 fields as little-endian"
#endif

#define MAX_DEPTH 8 /* _otlp._MAX_DEPTH: arrays nested deeper are sent as str(value) */

/* Results of the encoding helpers. */
#define OK 0
#define FALLBACK 1 /* leave this batch to the reference */
#define FAIL -1    /* a Python exception is set (memory) */

/* The body being written: a bytes object grown as needed, cut to its length at the end. */
typedef struct {
    PyObject *obj;
    char *p;
    Py_ssize_t len, cap;
} Out;

static int grow(Out *o, Py_ssize_t n) {
    Py_ssize_t need = o->len + n, cap = o->cap;
    if (n < 0 || need < 0) {
        PyErr_NoMemory();
        return FAIL;
    }
    while (cap < need) cap = cap <= PY_SSIZE_T_MAX / 2 ? 2 * cap : need;
    if (_PyBytes_Resize(&o->obj, cap) < 0) return FAIL;
    o->p = PyBytes_AS_STRING(o->obj);
    o->cap = cap;
    return OK;
}

/* Room for n more bytes. */
static inline int reserve(Out *o, Py_ssize_t n) { return o->cap - o->len >= n ? OK : grow(o, n); }

/* -- wire format ------------------------------------------------------------------------ */

static inline int vsize(uint64_t v) {
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline char *put_varint(char *w, uint64_t v) {
    while (v >= 0x80) {
        *w++ = (char)(v | 0x80);
        v >>= 7;
    }
    *w++ = (char)v;
    return w;
}

static inline char *put_be64(char *w, uint64_t v) {
    for (int i = 7; i >= 0; i--) *w++ = (char)(v >> (8 * i));
    return w;
}

/* A length-delimited field whose length is not known yet: its tag and `guess` bytes for the
   length, which close_field fixes (moving the body if the length takes more or fewer).
   Returns the body's offset, -1 on error. */
static Py_ssize_t open_field(Out *o, uint8_t tag, int guess) {
    if (reserve(o, 1 + guess) < 0) return -1;
    o->p[o->len] = (char)tag;
    o->len += 1 + guess;
    return o->len;
}

static int close_field(Out *o, Py_ssize_t body, int guess) {
    Py_ssize_t n = o->len - body;
    int k = vsize((uint64_t)n);
    if (k != guess) {
        if (k > guess && reserve(o, k - guess) < 0) return FAIL;
        memmove(o->p + body + (k - guess), o->p + body, (size_t)n);
        o->len += k - guess;
    }
    put_varint(o->p + body - guess, (uint64_t)n);
    return OK;
}

/* -- strings ---------------------------------------------------------------------------- */

/* UTF-8 bytes of a str (or a bytes-like value) to copy, or the characters of a non-ASCII str
   to encode while writing; and the object to release after use. */
typedef struct {
    const char *s;   /* bytes to copy, or NULL: encode kind/data */
    Py_ssize_t n;    /* UTF-8 size */
    int kind;
    const void *data;
    Py_ssize_t chars;
    PyObject *owner; /* strong reference or NULL */
} Text;

/* Bytes a non-ASCII character adds to the one it is counted as: two-byte forms add 1, three 2,
   four 3; a lone surrogate is the one byte of the "?" str.encode(errors="replace") writes. */
static inline Py_ssize_t utf8_extra(Py_UCS4 c) {
    return (c >= 0x80) + (c >= 0x800) + (c >= 0x10000) - 2 * (c >= 0xD800 && c <= 0xDFFF);
}

/* Machine words of characters are looked at whole: mostly-ASCII text (model output with a few
   typographic quotes) goes word by word. Masks: any bit above 0x7F in any character. */
#define ASCII_MASK_1 0x8080808080808080ULL /* 8 UCS1 characters */
#define ASCII_MASK_2 0xFF80FF80FF80FF80ULL /* 4 UCS2 characters */
#define ASCII_MASK_4 0xFFFFFF80FFFFFF80ULL /* 2 UCS4 characters */

#if defined(__SSE2__)
/* Whether 8 UCS2 characters are all ASCII. */
static inline int ascii8(__m128i v) {
    __m128i high = _mm_and_si128(v, _mm_set1_epi16((short)0xFF80));
    return _mm_movemask_epi8(_mm_cmpeq_epi16(high, _mm_setzero_si128())) == 0xFFFF;
}
#endif

/* The UTF-8 size of a non-ASCII str's characters. */
static Py_ssize_t utf8_size(int kind, const void *data, Py_ssize_t chars) {
    Py_ssize_t n = chars, i = 0;
    uint64_t w;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *d = data;
        for (; i < chars; i++) n += d[i] >> 7;
    } else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *d = data;
#if defined(__SSE2__)
        for (; i + 8 <= chars; i += 8)
            if (!ascii8(_mm_loadu_si128((const __m128i *)(d + i))))
                for (int j = 0; j < 8; j++) n += utf8_extra(d[i + j]);
#endif
        for (; i + 4 <= chars; i += 4) {
            memcpy(&w, d + i, 8);
            if (w & ASCII_MASK_2)
                n += utf8_extra(d[i]) + utf8_extra(d[i + 1]) + utf8_extra(d[i + 2]) + utf8_extra(d[i + 3]);
        }
        for (; i < chars; i++) n += utf8_extra(d[i]);
    } else {
        const Py_UCS4 *d = data;
        for (; i + 2 <= chars; i += 2) {
            memcpy(&w, d + i, 8);
            if (w & ASCII_MASK_4) n += utf8_extra(d[i]) + utf8_extra(d[i + 1]);
        }
        for (; i < chars; i++) n += utf8_extra(d[i]);
    }
    return n;
}

static inline char *put_code_point(char *w, Py_UCS4 c) {
    if (c < 0x80) {
        *w++ = (char)c;
    } else if (c < 0x800) {
        *w++ = (char)(0xC0 | (c >> 6));
        *w++ = (char)(0x80 | (c & 0x3F));
    } else if (c >= 0xD800 && c <= 0xDFFF) {
        *w++ = '?';
    } else if (c < 0x10000) {
        *w++ = (char)(0xE0 | (c >> 12));
        *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *w++ = (char)(0x80 | (c & 0x3F));
    } else {
        *w++ = (char)(0xF0 | (c >> 18));
        *w++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *w++ = (char)(0x80 | (c & 0x3F));
    }
    return w;
}

/* The text's bytes (room for t->n reserved). */
static char *put_text(char *out, const Text *t) {
    if (t->s != NULL) {
        memcpy(out, t->s, (size_t)t->n);
        return out + t->n;
    }
    Py_ssize_t i = 0;
    uint64_t w;
    if (t->kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *d = t->data;
        for (; i + 8 <= t->chars; i += 8) {
            memcpy(&w, d + i, 8);
            if (w & ASCII_MASK_1) {
                for (int j = 0; j < 8; j++) out = put_code_point(out, d[i + j]);
            } else {
                memcpy(out, &w, 8);
                out += 8;
            }
        }
        for (; i < t->chars; i++) out = put_code_point(out, d[i]);
    } else if (t->kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *d = t->data;
#if defined(__SSE2__)
        for (; i + 8 <= t->chars; i += 8) {
            __m128i v = _mm_loadu_si128((const __m128i *)(d + i));
            if (ascii8(v)) { /* the low byte of each of the eight */
                _mm_storel_epi64((__m128i *)out, _mm_packus_epi16(v, v));
                out += 8;
            } else {
                for (int j = 0; j < 8; j++) out = put_code_point(out, d[i + j]);
            }
        }
#endif
        for (; i + 4 <= t->chars; i += 4) {
            memcpy(&w, d + i, 8);
            if (w & ASCII_MASK_2) {
                for (int j = 0; j < 4; j++) out = put_code_point(out, d[i + j]);
            } else { /* the low byte of each of the four (little-endian) */
                uint32_t four = (uint32_t)((w & 0xFF) | ((w >> 8) & 0xFF00) | ((w >> 16) & 0xFF0000) |
                                           ((w >> 24) & 0xFF000000));
                memcpy(out, &four, 4);
                out += 4;
            }
        }
        for (; i < t->chars; i++) out = put_code_point(out, d[i]);
    } else {
        const Py_UCS4 *d = t->data;
        for (; i < t->chars; i++) out = put_code_point(out, d[i]);
    }
    return out;
}

/* A str's UTF-8: the data itself for ASCII; else the characters, encoded as they are written
   (lone surrogates as "?", as the reference's errors="replace" does). */
static int text_of(PyObject *str, Text *t) {
    t->owner = NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(str) < 0) return FAIL; /* a legacy str made by a C extension */
#endif
    t->chars = PyUnicode_GET_LENGTH(str);
    if (PyUnicode_IS_ASCII(str)) {
        t->s = (const char *)PyUnicode_DATA(str);
        t->n = t->chars;
        return OK;
    }
    t->s = NULL;
    t->kind = PyUnicode_KIND(str);
    t->data = PyUnicode_DATA(str);
    t->n = utf8_size(t->kind, t->data, t->chars);
    return OK;
}

static void bytes_text(const char *s, Py_ssize_t n, Text *t) {
    t->owner = NULL;
    t->s = s;
    t->n = n;
}

/* tag, length, text */
static int put_ld(Out *o, uint8_t tag, const Text *t) {
    if (reserve(o, 11 + t->n) < 0) return FAIL;
    char *w = o->p + o->len;
    *w++ = (char)tag;
    w = put_varint(w, (uint64_t)t->n);
    o->len = put_text(w, t) - o->p;
    return OK;
}

static int put_str_field(Out *o, uint8_t tag, PyObject *str) {
    Text t;
    return text_of(str, &t) < 0 ? FAIL : put_ld(o, tag, &t);
}

/* -- values ----------------------------------------------------------------------------- */

/* A scalar AnyValue: its one field (tag) and that field's content. */
typedef struct {
    uint8_t tag; /* string_value 0x0A, bool_value 0x10, int_value 0x18, double_value 0x21, bytes_value 0x3A */
    Text text;   /* string and bytes */
    uint64_t u;  /* bool and int */
    double d;
    Py_ssize_t size; /* of the AnyValue body */
} Scalar;

/* A scalar value of an exact type, as the reference's _any_value maps it; FALLBACK for any
   other type (lists and tuples are the caller's). */
static int scalar_of(PyObject *v, Scalar *sc) {
    sc->text.owner = NULL;
    if (PyUnicode_CheckExact(v)) {
        if (text_of(v, &sc->text) < 0) return FAIL;
        sc->tag = 0x0A;
    } else if (PyBool_Check(v)) { /* before int: a bool is an int to Python */
        sc->tag = 0x10;
        sc->u = v == Py_True;
        sc->size = 2;
        return OK;
    } else if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow == 0) {
            if (x == -1 && PyErr_Occurred()) return FAIL;
            sc->tag = 0x18;
            sc->u = (uint64_t)x; /* negative: 64-bit two's complement, ten bytes */
            sc->size = 1 + vsize(sc->u);
            return OK;
        }
        /* outside int64: the decimal string (str() of an exact int is ASCII) */
        PyObject *s = PyObject_Str(v);
        if (s == NULL) { /* more digits than sys.get_int_max_str_digits(): the reference raises */
            PyErr_Clear();
            return FALLBACK;
        }
        sc->tag = 0x0A;
        bytes_text((const char *)PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s), &sc->text);
        sc->text.owner = s;
    } else if (PyFloat_CheckExact(v)) {
        sc->tag = 0x21;
        sc->d = PyFloat_AS_DOUBLE(v); /* NaN payloads and -0.0 as they are, like struct.pack */
        sc->size = 9;
        return OK;
    } else if (PyBytes_CheckExact(v)) {
        sc->tag = 0x3A;
        bytes_text(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), &sc->text);
    } else if (PyByteArray_CheckExact(v)) {
        sc->tag = 0x3A;
        bytes_text(PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v), &sc->text);
    } else {
        return FALLBACK;
    }
    sc->size = 1 + vsize((uint64_t)sc->text.n) + sc->text.n;
    return OK;
}

/* The AnyValue body (room for sc->size bytes reserved). */
static char *put_scalar(char *w, const Scalar *sc) {
    *w++ = (char)sc->tag;
    switch (sc->tag) {
    case 0x10:
    case 0x18:
        return put_varint(w, sc->u);
    case 0x21:
        memcpy(w, &sc->d, 8);
        return w + 8;
    default:
        return put_text(put_varint(w, (uint64_t)sc->text.n), &sc->text);
    }
}

static int put_array(Out *o, PyObject *seq, int depth);

/* One ArrayValue.values (1) field: an AnyValue. */
static int put_array_item(Out *o, PyObject *x, int depth) {
    if (PyList_CheckExact(x) || PyTuple_CheckExact(x)) {
        if (depth + 1 >= MAX_DEPTH) return FALLBACK; /* the reference sends str(x) */
        Py_ssize_t body = open_field(o, 0x0A, 1);
        if (body < 0) return FAIL;
        int r = put_array(o, x, depth + 1);
        return r != OK ? r : close_field(o, body, 1);
    }
    Scalar sc;
    int r = scalar_of(x, &sc);
    if (r == OK && (r = reserve(o, 11 + sc.size)) == OK) {
        char *w = o->p + o->len;
        *w++ = 0x0A;
        w = put_varint(w, (uint64_t)sc.size);
        o->len = put_scalar(w, &sc) - o->p;
    }
    Py_XDECREF(sc.text.owner);
    return r;
}

/* An AnyValue body holding array_value (5) with the items of a list or tuple. */
static int put_array(Out *o, PyObject *seq, int depth) {
    Py_ssize_t body = open_field(o, 0x2A, 1);
    if (body < 0) return FAIL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *x = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(x);
        int r = put_array_item(o, x, depth);
        Py_DECREF(x);
        if (r != OK) return r;
    }
    return close_field(o, body, 1);
}

/* One KeyValue field (tag: its field number and wire type); an empty key is left out, as
   proto3 leaves out defaults. */
static int put_key_value(Out *o, uint8_t tag, PyObject *key, PyObject *value) {
    Text k;
    if (text_of(key, &k) < 0) return FAIL;
    Py_ssize_t key_size = k.n ? 1 + vsize((uint64_t)k.n) + k.n : 0;
    int r;
    if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
        Py_ssize_t kv, av;
        r = FAIL;
        if ((kv = open_field(o, tag, 1)) >= 0 && (!k.n || put_ld(o, 0x0A, &k) == OK) &&
            (av = open_field(o, 0x12, 1)) >= 0) { /* KeyValue.value (2) */
            r = put_array(o, value, 0);
            if (r == OK) r = close_field(o, av, 1);
            if (r == OK) r = close_field(o, kv, 1);
        }
    } else {
        Scalar sc;
        r = scalar_of(value, &sc);
        if (r == OK) {
            Py_ssize_t size = key_size + 1 + vsize((uint64_t)sc.size) + sc.size;
            if ((r = reserve(o, 11 + size)) == OK) {
                char *w = o->p + o->len;
                *w++ = (char)tag;
                w = put_varint(w, (uint64_t)size);
                if (k.n) {
                    *w++ = 0x0A;
                    w = put_text(put_varint(w, (uint64_t)k.n), &k);
                }
                *w++ = 0x12;
                w = put_varint(w, (uint64_t)sc.size);
                o->len = put_scalar(w, &sc) - o->p;
            }
        }
        Py_XDECREF(sc.text.owner);
    }
    return r;
}

/* One KeyValue field per item of a dict (exact, or SharedAttributes: items() not overridden). */
static int put_attributes(Out *o, uint8_t tag, PyObject *attrs) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(attrs, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) return FALLBACK;
        Py_INCREF(k);
        Py_INCREF(v);
        int r = put_key_value(o, tag, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (r != OK) return r;
    }
    return OK;
}

/* -- records ---------------------------------------------------------------------------- */

static PyTypeObject *SPAN_RECORD, *SPAN_EVENT, *SHARED_ATTRIBUTES;
static PyObject *S_PB, *SIXTY_FOUR;

/* SpanRecord and SpanEvent are slotted: their fields are read at the slots' offsets, found
   once from the classes' member descriptors (an unset slot is NULL). */
enum { R_TRACE_ID, R_SPAN_ID, R_PARENT_ID, R_NAME, R_KIND, R_START, R_END, R_ATTRS, R_EVENTS, R_STATUS, R_MESSAGE, R_N };
static const char *RECORD_SLOTS[R_N] = {"trace_id", "span_id", "parent_id", "name", "kind", "start_ns",
                                        "end_ns", "attributes", "events", "status", "status_message"};
static Py_ssize_t RECORD_OFFSETS[R_N];
enum { E_NAME, E_TIME, E_ATTRS, E_N };
static const char *EVENT_SLOTS[E_N] = {"name", "time_ns", "attributes"};
static Py_ssize_t EVENT_OFFSETS[E_N];

/* New references to an object's slots; FALLBACK if one is unset. */
static int read_slots(PyObject *obj, const Py_ssize_t *offsets, int n, PyObject **out) {
    for (int i = 0; i < n; i++) {
        PyObject *v = *(PyObject **)((char *)obj + offsets[i]);
        if (v == NULL) {
            for (int j = 0; j < i; j++) Py_DECREF(out[j]);
            return FALLBACK;
        }
        Py_INCREF(v);
        out[i] = v;
    }
    return OK;
}

static void release_slots(PyObject **slots, int n) {
    for (int i = 0; i < n; i++) Py_DECREF(slots[i]);
}

/* An exact int in [0, 2**64) (a time or a span id); FALLBACK for anything else (the
   reference's struct.pack raises for it, or packs what C leaves alone). */
static int u64_of(PyObject *v, uint64_t *out) {
    if (!PyLong_CheckExact(v)) return FALLBACK;
    *out = PyLong_AsUnsignedLongLong(v);
    if (*out == (uint64_t)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return FAIL;
        PyErr_Clear();
        return FALLBACK;
    }
    return OK;
}

/* An enum (kind, status code) as the reference's _varint writes it: negative ints as their
   64-bit two's complement; 2**64 and more (longer varints) left to the reference. `set` is the
   int's truth (the reference's `if kind:`), not the written value's: -2**64 is written as 0. */
static int enum_of(PyObject *v, uint64_t *out, int *set) {
    if (!PyLong_CheckExact(v)) return FALLBACK;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0) {
        if (x == -1 && PyErr_Occurred()) return FAIL;
        *out = (uint64_t)x;
        *set = x != 0;
        return OK;
    }
    *set = 1;
    if (overflow < 0) {
        *out = PyLong_AsUnsignedLongLongMask(v);
        return *out == (uint64_t)-1 && PyErr_Occurred() ? FAIL : OK;
    }
    return u64_of(v, out);
}

/* A 128-bit trace id as its high and low 64 bits. */
static int trace_id_of(PyObject *v, uint64_t *hi, uint64_t *lo) {
    if (!PyLong_CheckExact(v)) return FALLBACK;
    PyObject *high = PyNumber_Rshift(v, SIXTY_FOUR);
    if (high == NULL) return FAIL;
    int r = u64_of(high, hi); /* negative, or 2**128 and more: FALLBACK */
    Py_DECREF(high);
    if (r != OK) return r;
    *lo = PyLong_AsUnsignedLongLongMask(v);
    return *lo == (uint64_t)-1 && PyErr_Occurred() ? FAIL : OK;
}

/* One Span.events (11) field. */
static int put_event(Out *o, PyObject *e) {
    if (Py_TYPE(e) != SPAN_EVENT) return FALLBACK;
    PyObject *f[E_N], *pb = NULL;
    if (read_slots(e, EVENT_OFFSETS, E_N, f) != OK) return FALLBACK;
    PyObject *name = f[E_NAME], *attrs = f[E_ATTRS];
    uint64_t time;
    int shared = Py_TYPE(attrs) == SHARED_ATTRIBUTES;
    int r = FALLBACK;
    if (!PyUnicode_CheckExact(name) || !(shared || PyDict_CheckExact(attrs)) || (r = u64_of(f[E_TIME], &time)) != OK)
        goto done;
    r = FAIL;
    Py_ssize_t body = open_field(o, 0x5A, 1);
    if (body < 0) goto done;
    if (time) { /* Event.time_unix_nano (1), fixed64 */
        if (reserve(o, 9) < 0) goto done;
        o->p[o->len] = 0x09;
        memcpy(o->p + o->len + 1, &time, 8);
        o->len += 9;
    }
    if (PyUnicode_GET_LENGTH(name) && put_str_field(o, 0x12, name) < 0) goto done;
    if (shared) { /* Event.attributes (3), kept on the SharedAttributes as the reference keeps them */
        if ((pb = PyObject_GetAttr(attrs, S_PB)) == NULL) goto done;
        if (pb == Py_None) {
            Py_ssize_t start = o->len;
            if ((r = put_attributes(o, 0x1A, attrs)) != OK) goto done;
            r = FAIL;
            Py_SETREF(pb, PyBytes_FromStringAndSize(o->p + start, o->len - start));
            if (pb == NULL || PyObject_SetAttr(attrs, S_PB, pb) < 0) goto done;
        } else if (!PyBytes_CheckExact(pb)) {
            r = FALLBACK;
            goto done;
        } else {
            Py_ssize_t n = PyBytes_GET_SIZE(pb);
            if (reserve(o, n) < 0) goto done;
            memcpy(o->p + o->len, PyBytes_AS_STRING(pb), (size_t)n);
            o->len += n;
        }
    } else if ((r = put_attributes(o, 0x1A, attrs)) != OK) {
        goto done;
    }
    r = close_field(o, body, 1);
done:
    Py_XDECREF(pb);
    release_slots(f, E_N);
    return r;
}

/* One ScopeSpans.spans (2) field. */
static int put_span(Out *o, PyObject *s) {
    if (Py_TYPE(s) != SPAN_RECORD) return FALLBACK;
    PyObject *f[R_N];
    if (read_slots(s, RECORD_OFFSETS, R_N, f) != OK) return FALLBACK;
    PyObject *name = f[R_NAME], *attrs = f[R_ATTRS], *events = f[R_EVENTS], *msg = f[R_MESSAGE];
    uint64_t hi, lo, span_id, parent, start, end, kind, code;
    int has_kind, has_code, r;
    if ((r = trace_id_of(f[R_TRACE_ID], &hi, &lo)) != OK || (r = u64_of(f[R_SPAN_ID], &span_id)) != OK ||
        (r = u64_of(f[R_PARENT_ID], &parent)) != OK || (r = enum_of(f[R_KIND], &kind, &has_kind)) != OK ||
        (r = u64_of(f[R_START], &start)) != OK || (r = u64_of(f[R_END], &end)) != OK ||
        (r = enum_of(f[R_STATUS], &code, &has_code)) != OK)
        goto done;
    r = FALLBACK;
    if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(msg) || !PyList_CheckExact(events) ||
        !(PyDict_CheckExact(attrs) || Py_TYPE(attrs) == SHARED_ATTRIBUTES))
        goto done;
    r = FAIL;
    /* Most spans take 128 bytes to 16 KB: two bytes of length. */
    Py_ssize_t body = open_field(o, 0x12, 2);
    if (body < 0 || reserve(o, 18 + 10 + 10) < 0) goto done;
    char *w = o->p + o->len;
    *w++ = 0x0A; /* trace_id (1), span_id (2), parent_span_id (4): big-endian bytes */
    *w++ = 16;
    w = put_be64(put_be64(w, hi), lo);
    *w++ = 0x12;
    *w++ = 8;
    w = put_be64(w, span_id);
    if (parent) {
        *w++ = 0x22;
        *w++ = 8;
        w = put_be64(w, parent);
    }
    o->len = w - o->p;
    if (PyUnicode_GET_LENGTH(name) && put_str_field(o, 0x2A, name) < 0) goto done; /* name (5) */
    if (reserve(o, 11 + 9 + 9) < 0) goto done;
    w = o->p + o->len;
    if (has_kind) { /* kind (6) */
        *w++ = 0x30;
        w = put_varint(w, kind);
    }
    if (start) { /* start_time_unix_nano (7), end_time_unix_nano (8): fixed64 */
        *w++ = 0x39;
        memcpy(w, &start, 8);
        w += 8;
    }
    if (end) {
        *w++ = 0x41;
        memcpy(w, &end, 8);
        w += 8;
    }
    o->len = w - o->p;
    if (PyDict_GET_SIZE(attrs) && (r = put_attributes(o, 0x4A, attrs)) != OK) goto done; /* attributes (9) */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *e = PyList_GET_ITEM(events, i);
        Py_INCREF(e);
        r = put_event(o, e);
        Py_DECREF(e);
        if (r != OK) goto done;
    }
    r = FAIL;
    if (PyUnicode_GET_LENGTH(msg)) { /* status (15): message (2), code (3) */
        Text t;
        if (text_of(msg, &t) < 0) goto done;
        Py_ssize_t size = 1 + vsize((uint64_t)t.n) + t.n + (has_code ? 1 + vsize(code) : 0);
        int room = reserve(o, 11 + size);
        if (room == OK) {
            w = o->p + o->len;
            *w++ = 0x7A;
            w = put_varint(w, (uint64_t)size);
            *w++ = 0x12;
            w = put_text(put_varint(w, (uint64_t)t.n), &t);
            if (has_code) {
                *w++ = 0x18;
                w = put_varint(w, code);
            }
            o->len = w - o->p;
        }
        if (room != OK) goto done;
    } else if (has_code) {
        if (reserve(o, 13) < 0) goto done;
        w = o->p + o->len;
        *w++ = 0x7A;
        *w++ = (char)(1 + vsize(code));
        *w++ = 0x18;
        o->len = put_varint(w, code) - o->p;
    }
    r = close_field(o, body, 2);
done:
    release_slots(f, R_N);
    return r;
}

/* The bytes a span took in the previous batch: sizes the next body, and guesses the length of
   the request's two headers so that the spans need not move once written (a hint only). */
static Py_ssize_t span_bytes_hint = 512;
#define MAX_GUESS ((Py_ssize_t)1 << 25) /* allocated up front at most; beyond, the body grows */

/* encode(spans, resource_field, scope_field) -> bytes | None */
static PyObject *encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_CheckExact(args[1]) || !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "encode(spans, resource_field: bytes, scope_field: bytes)");
        return NULL;
    }
    PyObject *spans = args[0], *resource = args[1], *scope = args[2];
    if (!PyList_CheckExact(spans) && !PyTuple_CheckExact(spans)) Py_RETURN_NONE;
    Py_ssize_t n_spans = PySequence_Fast_GET_SIZE(spans);
    Py_ssize_t rn = PyBytes_GET_SIZE(resource), sn = PyBytes_GET_SIZE(scope);
    /* ExportTraceServiceRequest.resource_spans (1): resource, then scope_spans (2): scope, spans.
       Their lengths are known at the end; the spans are written after room for a guess. */
    Py_ssize_t guess = n_spans <= MAX_GUESS / span_bytes_hint ? n_spans * span_bytes_hint : MAX_GUESS;
    uint64_t scope_spans = (uint64_t)sn + (uint64_t)guess;
    uint64_t resource_spans = (uint64_t)rn + 1 + vsize(scope_spans) + scope_spans;
    Py_ssize_t head = 1 + vsize(resource_spans) + rn + 1 + vsize(scope_spans) + sn;
    Out o;
    o.cap = head + guess + guess / 8 + 1024;
    o.obj = PyBytes_FromStringAndSize(NULL, o.cap);
    if (o.obj == NULL) return NULL;
    o.p = PyBytes_AS_STRING(o.obj);
    o.len = head;
    int r = OK;
    for (Py_ssize_t i = 0; r == OK && i < PySequence_Fast_GET_SIZE(spans); i++) {
        PyObject *s = PySequence_Fast_GET_ITEM(spans, i);
        Py_INCREF(s);
        r = put_span(&o, s);
        Py_DECREF(s);
    }
    if (r != OK) {
        Py_XDECREF(o.obj); /* NULL if growing it failed */
        if (r == FAIL) return NULL;
        Py_RETURN_NONE;
    }
    Py_ssize_t body = o.len - head;
    if (n_spans) span_bytes_hint = body / n_spans + 1;
    scope_spans = (uint64_t)(sn + body);
    int k2 = vsize(scope_spans);
    resource_spans = (uint64_t)rn + 1 + k2 + scope_spans;
    Py_ssize_t header = 1 + vsize(resource_spans) + rn + 1 + k2 + sn;
    if (header != head) { /* a wrong guess: move the spans */
        if (header > head && reserve(&o, header - head) < 0) {
            Py_XDECREF(o.obj);
            return NULL;
        }
        memmove(o.p + header, o.p + head, (size_t)body);
        o.len = header + body;
    }
    char *w = o.p;
    *w++ = 0x0A;
    w = put_varint(w, resource_spans);
    memcpy(w, PyBytes_AS_STRING(resource), (size_t)rn);
    w += rn;
    *w++ = 0x12;
    w = put_varint(w, scope_spans);
    memcpy(w, PyBytes_AS_STRING(scope), (size_t)sn);
    if (_PyBytes_Resize(&o.obj, o.len) < 0) return NULL;
    return o.obj;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(spans, resource_field, scope_field) -> bytes | None: the OTLP ExportTraceServiceRequest "
     "body ProtobufEncoder._encode_python writes for these span records, or None to leave the batch to it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlpenc", NULL, -1, methods, NULL, NULL, NULL, NULL};

/* The slots' offsets in a class whose fields are plain __slots__ (member descriptors holding
   objects) read through the default attribute lookup; ImportError otherwise. */
static int slot_offsets(PyTypeObject *type, const char **names, int n, Py_ssize_t *out) {
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        PyErr_Format(PyExc_ImportError, "_otlpenc: %s has its own attribute lookup", type->tp_name);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *d = PyObject_GetAttrString((PyObject *)type, names[i]);
        if (d == NULL) return -1;
        int ok = Py_TYPE(d) == &PyMemberDescr_Type && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok) out[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_ImportError, "_otlpenc: %s.%s is not a slot", type->tp_name, names[i]);
            return -1;
        }
    }
    return 0;
}

static PyTypeObject *type_from(PyObject *module, const char *name) {
    PyObject *t = PyObject_GetAttrString(module, name);
    if (t != NULL && !PyType_Check(t)) {
        Py_DECREF(t);
        PyErr_Format(PyExc_ImportError, "_otlpenc: llmpulse._span.%s is not a class", name);
        return NULL;
    }
    return (PyTypeObject *)t;
}

PyMODINIT_FUNC PyInit__otlpenc(void) {
    PyObject *span = PyImport_ImportModule("llmpulse._span");
    if (span == NULL) return NULL;
    SPAN_RECORD = type_from(span, "SpanRecord");
    SPAN_EVENT = SPAN_RECORD == NULL ? NULL : type_from(span, "SpanEvent");
    SHARED_ATTRIBUTES = SPAN_EVENT == NULL ? NULL : type_from(span, "SharedAttributes");
    Py_DECREF(span);
    if (SHARED_ATTRIBUTES == NULL || slot_offsets(SPAN_RECORD, RECORD_SLOTS, R_N, RECORD_OFFSETS) < 0 ||
        slot_offsets(SPAN_EVENT, EVENT_SLOTS, E_N, EVENT_OFFSETS) < 0)
        return NULL;
    if ((S_PB = PyUnicode_InternFromString("pb")) == NULL || (SIXTY_FOUR = PyLong_FromLong(64)) == NULL) return NULL;
    return PyModule_Create(&module);
}
