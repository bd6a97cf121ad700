/*
 * llmpulse_collector._otlpscan: an OTLP ExportTraceServiceRequest protobuf body -> plain
 * Python values, in one pass over the wire bytes.
 *
 * The pure-Python reference is ingest/otlp.py's _pb_scan (upb's parse, then one Python object
 * per field access); this does the same work without building the message tree. The
 * contract, checked by tests/collector/test_otlpscan.py against the reference on generated
 * and mutated bodies:
 *
 *   scan(body, lim, event_names, truncate) -> list | None
 *
 * returns exactly what _pb_scan returns for that body, or None when the body holds anything
 * this scanner leaves to the reference: a parse error or invalid UTF-8 (upb decides the 400
 * and its message), a limit that makes the reference add a warning (more than 1024
 * attributes, events or items, values nested 16 deep), bytes values, string-table indexes,
 * groups, or a singular message field sent twice (protobuf merges those). None costs one
 * wasted pass; the caller then runs the reference.
 *
 * Result: [(resource_attrs, [(scope_name, [span, ...]), ...]), ...] with
 * span = (trace_id, span_id, parent_span_id, name, kind, start, end, status_code,
 *         status_message, attrs, events) and events = [(name, time, attrs), ...], only the
 * events whose name is in event_names. Ids are bytes; strings in attributes (and the scope
 * name) longer than lim characters are cut by calling truncate(s, lim).
 *
 * Every string field the reference's parser would check for valid UTF-8 is checked here too,
 * including fields it never reads (trace state, schema URLs, links, other events), since upb
 * rejects the whole body for one bad string.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* Fixed-width fields are read with memcpy: little-endian only. A big-endian build fails here,
   and setup.py's optional extension leaves such hosts on the pure-Python reference. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "_otlpscan reads protobuf fixed64 fields as little-endian"
#endif

#define MAX_DEPTH 16   /* nested arrays / kvlists (the reference cuts deeper values) */
#define MAX_ITEMS 1024 /* items of one array or kvlist */
#define MAX_ATTRS 1024 /* attributes of one span, event or resource */
#define MAX_EVENTS 1024
#define END_OF_TIME ((uint64_t)1 << 63)
#define CACHE_SIZE 512     /* strings remembered per call (power of two) */
#define CACHE_MAX_BYTES 64 /* only short strings (keys, models, providers) are remembered */

/* Results of the parse helpers. */
#define OK 0
#define FALLBACK 1 /* leave this body to the reference */
#define FAIL -1    /* a Python exception is set (memory) */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Buf;

typedef struct {
    uint32_t number;
    uint32_t wire;
    uint64_t value; /* varint / fixed */
    Buf sub;        /* length-delimited */
} Field;

typedef struct {
    PyObject *str; /* strong reference, NULL when empty */
    Py_ssize_t len;
    uint64_t hash;
} CacheEntry;

typedef struct {
    Py_ssize_t lim;
    PyObject *event_names;
    PyObject *truncate;
    CacheEntry cache[CACHE_SIZE];
} Scan;

/* -- wire format ------------------------------------------------------------------------ */

static int read_varint(Buf *b, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && b->p < b->end; shift += 7) {
        uint8_t c = *b->p++;
        if (shift == 63 && c > 1) return 0; /* past 64 bits */
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* The next field of a message: 1, 0 at its end, -1 for anything to leave to the reference. */
static int next_field(Buf *b, Field *f) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (!read_varint(b, &key) || key > UINT32_MAX || (key >> 3) == 0) return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    switch (f->wire) {
    case 0:
        return read_varint(b, &f->value) ? 1 : -1;
    case 1:
        if (b->end - b->p < 8) return -1;
        memcpy(&f->value, b->p, 8);
        b->p += 8;
        return 1;
    case 5: {
        uint32_t v;
        if (b->end - b->p < 4) return -1;
        memcpy(&v, b->p, 4);
        f->value = v;
        b->p += 4;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (!read_varint(b, &n) || n > (uint64_t)(b->end - b->p)) return -1;
        f->sub.p = b->p;
        f->sub.end = b->p + n;
        b->p += n;
        return 1;
    }
    default: /* groups (3, 4) and the invalid 6, 7 */
        return -1;
    }
}

/* Strict UTF-8 as upb checks it: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const uint8_t *s, Py_ssize_t n) {
    const uint8_t *end = s + n;
    while (s < end) {
        uint8_t c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        Py_ssize_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (end - s < len) return 0;
        for (Py_ssize_t i = 1; i < len; i++) {
            if ((s[i] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        s += len;
    }
    return 1;
}

static int check_utf8(const Field *f) {
    return f->wire == 2 && !utf8_valid(f->sub.p, f->sub.end - f->sub.p) ? FALLBACK : OK;
}

/* -- strings ---------------------------------------------------------------------------- */

static uint64_t fnv1a(const uint8_t *s, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

/* A new reference to the str of a length-delimited field (NULL + FALLBACK on bad UTF-8).
   Short ASCII strings come from the call's cache (one object, hashed once, per distinct key or
   model name in a body); keys are interned, so normalize_span's lookups by its interned names
   compare by identity. */
static PyObject *make_str(Scan *sc, Buf s, int intern, int *status) {
    Py_ssize_t n = s.end - s.p;
    uint64_t h = 0;
    CacheEntry *e = NULL;
    if (n <= CACHE_MAX_BYTES) {
        h = fnv1a(s.p, n);
        e = &sc->cache[h & (CACHE_SIZE - 1)];
        if (e->str != NULL && e->hash == h && e->len == n && memcmp(PyUnicode_AsUTF8AndSize(e->str, NULL), s.p, n) == 0) {
            Py_INCREF(e->str);
            return e->str;
        }
    }
    PyObject *str = PyUnicode_DecodeUTF8((const char *)s.p, n, NULL);
    if (str == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            *status = FAIL;
            return NULL;
        }
        PyErr_Clear();
        *status = FALLBACK;
        return NULL;
    }
    if (intern) PyUnicode_InternInPlace(&str);
    if (e != NULL) {
        /* PyUnicode_AsUTF8AndSize caches the UTF-8 form; for ASCII it is the data itself. */
        if (PyUnicode_IS_ASCII(str)) {
            Py_XDECREF(e->str);
            Py_INCREF(str);
            e->str = str;
            e->hash = h;
            e->len = n;
        }
    }
    return str;
}

/* The str of an attribute value or scope name, cut to lim characters by truncate(). */
static PyObject *make_value_str(Scan *sc, Buf s, int *status) {
    PyObject *str = make_str(sc, s, 0, status);
    if (str == NULL || PyUnicode_GET_LENGTH(str) <= sc->lim) return str;
    PyObject *lim = PyLong_FromSsize_t(sc->lim);
    PyObject *cut = lim == NULL ? NULL : PyObject_CallFunctionObjArgs(sc->truncate, str, lim, NULL);
    Py_XDECREF(lim);
    Py_DECREF(str);
    if (cut == NULL) *status = FAIL;
    return cut;
}

/* -- values ----------------------------------------------------------------------------- */

static int any_value(Scan *sc, Buf b, int depth, int build, PyObject **out);

/* KeyValue -> (key, value); with build 0 only checks. */
static int key_value(Scan *sc, Buf b, int depth, int build, PyObject **key, PyObject **value) {
    Field f;
    int r, status = OK;
    Buf key_buf = {NULL, NULL}, value_buf = {NULL, NULL};
    int have_value = 0;
    while ((r = next_field(&b, &f)) == 1) {
        if (f.number == 1 && f.wire == 2) {
            if (key_buf.p != NULL && !utf8_valid(key_buf.p, key_buf.end - key_buf.p)) return FALLBACK;
            key_buf = f.sub;
        } else if (f.number == 2 && f.wire == 2) {
            if (have_value) return FALLBACK; /* protobuf would merge the two */
            have_value = 1;
            value_buf = f.sub;
        }
    }
    if (r < 0) return FALLBACK;
    if (!build) {
        if (key_buf.p != NULL && !utf8_valid(key_buf.p, key_buf.end - key_buf.p)) return FALLBACK;
        return have_value ? any_value(sc, value_buf, depth, 0, NULL) : OK;
    }
    if (key_buf.p == NULL) {
        *key = PyUnicode_FromStringAndSize("", 0);
        if (*key == NULL) return FAIL;
    } else {
        *key = make_str(sc, key_buf, 1, &status);
        if (*key == NULL) return status;
    }
    if (!have_value) {
        Py_INCREF(Py_None);
        *value = Py_None;
        return OK;
    }
    status = any_value(sc, value_buf, depth, 1, value);
    if (status != OK) Py_CLEAR(*key);
    return status;
}

/* Repeated KeyValue fields `number` of message b -> dict (or checks only when out is NULL).
   More than `max` entries: FALLBACK. */
static int key_values(Scan *sc, Buf b, uint32_t number, int depth, Py_ssize_t max, PyObject *out) {
    Field f;
    int r;
    Py_ssize_t count = 0;
    while ((r = next_field(&b, &f)) == 1) {
        if (f.number != number || f.wire != 2) continue;
        if (++count > max) return FALLBACK;
        PyObject *key = NULL, *value = NULL;
        int status = key_value(sc, f.sub, depth, out != NULL, &key, &value);
        if (status != OK) return status;
        if (out != NULL) {
            int err = PyDict_SetItem(out, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (err < 0) return FAIL;
        }
    }
    return r < 0 ? FALLBACK : OK;
}

static int any_value(Scan *sc, Buf b, int depth, int build, PyObject **out) {
    Field f, last = {0};
    int r;
    int seen_array = 0, seen_kvlist = 0;
    while ((r = next_field(&b, &f)) == 1) {
        switch (f.number) {
        case 1:
            if (f.wire != 2) continue;
            break;
        case 2:
        case 3:
            if (f.wire != 0) continue;
            break;
        case 4:
            if (f.wire != 1) continue;
            break;
        case 5:
            if (f.wire != 2) continue;
            if (seen_array++) return FALLBACK;
            break;
        case 6:
            if (f.wire != 2) continue;
            if (seen_kvlist++) return FALLBACK;
            break;
        case 7: /* bytes: the reference base64-encodes them */
        case 8: /* a string-table index */
            return FALLBACK;
        default:
            continue;
        }
        /* A string replaced by a later member of the oneof is still checked, as upb does. */
        if (last.number == 1 && check_utf8(&last) != OK) return FALLBACK;
        last = f;
    }
    if (r < 0) return FALLBACK;
    int status = OK;
    if (!build) {
        switch (last.number) {
        case 1:
            return check_utf8(&last);
        case 5:
        case 6:
            if (depth + 1 >= MAX_DEPTH) return FALLBACK;
            if (last.number == 5) {
                Buf items = last.sub;
                Field item;
                int count = 0;
                while ((r = next_field(&items, &item)) == 1) {
                    if (item.number != 1 || item.wire != 2) continue;
                    if (++count > MAX_ITEMS) return FALLBACK;
                    if ((status = any_value(sc, item.sub, depth + 1, 0, NULL)) != OK) return status;
                }
                return r < 0 ? FALLBACK : OK;
            }
            return key_values(sc, last.sub, 1, depth + 1, MAX_ITEMS, NULL);
        default:
            return OK;
        }
    }
    switch (last.number) {
    case 0:
        Py_INCREF(Py_None);
        *out = Py_None;
        return OK;
    case 1:
        *out = make_value_str(sc, last.sub, &status);
        return *out == NULL ? status : OK;
    case 2:
        *out = PyBool_FromLong(last.value != 0);
        return OK;
    case 3:
        *out = PyLong_FromLongLong((long long)(int64_t)last.value);
        return *out == NULL ? FAIL : OK;
    case 4: {
        double d;
        memcpy(&d, &last.value, 8);
        *out = PyFloat_FromDouble(d);
        return *out == NULL ? FAIL : OK;
    }
    case 5: {
        /* the reference answers a marker string at 16 levels: leave that to it */
        if (depth + 1 >= MAX_DEPTH) return FALLBACK;
        PyObject *list = PyList_New(0);
        if (list == NULL) return FAIL;
        Buf items = last.sub;
        Field item;
        while ((r = next_field(&items, &item)) == 1) {
            if (item.number != 1 || item.wire != 2) continue;
            PyObject *value = NULL;
            if (PyList_GET_SIZE(list) >= MAX_ITEMS) status = FALLBACK;
            else status = any_value(sc, item.sub, depth + 1, 1, &value);
            if (status == OK && PyList_Append(list, value) < 0) status = FAIL;
            Py_XDECREF(value);
            if (status != OK) {
                Py_DECREF(list);
                return status;
            }
        }
        if (r < 0) {
            Py_DECREF(list);
            return FALLBACK;
        }
        *out = list;
        return OK;
    }
    case 6: {
        if (depth + 1 >= MAX_DEPTH) return FALLBACK;
        PyObject *dict = PyDict_New();
        if (dict == NULL) return FAIL;
        status = key_values(sc, last.sub, 1, depth + 1, MAX_ITEMS, dict);
        if (status != OK) {
            Py_DECREF(dict);
            return status;
        }
        *out = dict;
        return OK;
    }
    }
    return FALLBACK; /* not reached */
}

/* -- messages that are only checked ----------------------------------------------------- */

/* Every string field of a message (numbers in `strings`) valid, every KeyValue list checked. */
static int check_message(Scan *sc, Buf b, const uint32_t *strings, int n_strings, uint32_t attrs_number) {
    Field f;
    int r, status;
    while ((r = next_field(&b, &f)) == 1) {
        if (f.wire != 2) continue;
        if (f.number == attrs_number) {
            if ((status = key_value(sc, f.sub, 0, 0, NULL, NULL)) != OK) return status;
            continue;
        }
        for (int i = 0; i < n_strings; i++)
            if (f.number == strings[i] && !utf8_valid(f.sub.p, f.sub.end - f.sub.p)) return FALLBACK;
    }
    return r < 0 ? FALLBACK : OK;
}

static const uint32_t LINK_STRINGS[] = {3};           /* trace_state; attributes are 4 */
static const uint32_t ENTITY_REF_STRINGS[] = {1, 2, 3, 4}; /* schema_url, type, id_keys, description_keys */
static const uint32_t SCOPE_STRINGS[] = {1, 2};       /* name, version; attributes are 3 */

/* -- spans ------------------------------------------------------------------------------ */

static PyObject *EMPTY_BYTES, *EMPTY_STR;

static PyObject *bytes_of(Buf s) {
    if (s.p == NULL || s.p == s.end) {
        Py_INCREF(EMPTY_BYTES);
        return EMPTY_BYTES;
    }
    return PyBytes_FromStringAndSize((const char *)s.p, s.end - s.p);
}

/* An Event -> (name, time, attrs) appended to events, when its name is one to keep;
   the others are only checked. */
static int event(Scan *sc, Buf b, PyObject *events) {
    Field f;
    int r, status = OK;
    Buf all = b, name = {NULL, NULL};
    uint64_t time = 0;
    while ((r = next_field(&b, &f)) == 1) {
        if (f.number == 1 && f.wire == 1) time = f.value;
        else if (f.number == 2 && f.wire == 2) {
            if (name.p != NULL && !utf8_valid(name.p, name.end - name.p)) return FALLBACK;
            name = f.sub;
        }
    }
    if (r < 0) return FALLBACK;
    PyObject *name_str = name.p == NULL ? (Py_INCREF(EMPTY_STR), EMPTY_STR) : make_str(sc, name, 0, &status);
    if (name_str == NULL) return status;
    int keep = PySet_Contains(sc->event_names, name_str);
    if (keep <= 0) {
        Py_DECREF(name_str);
        return keep < 0 ? FAIL : key_values(sc, all, 3, 0, MAX_ATTRS, NULL);
    }
    PyObject *attrs = PyDict_New();
    if (attrs == NULL || (status = key_values(sc, all, 3, 0, MAX_ATTRS, attrs)) != OK) {
        Py_DECREF(name_str);
        Py_XDECREF(attrs);
        return attrs == NULL ? FAIL : status;
    }
    PyObject *item = Py_BuildValue("(NKN)", name_str, (unsigned long long)(time < END_OF_TIME ? time : 0), attrs);
    if (item == NULL) return FAIL;
    int err = PyList_Append(events, item);
    Py_DECREF(item);
    return err < 0 ? FAIL : OK;
}

/* A Span -> its tuple appended to spans. */
static int span(Scan *sc, Buf b, PyObject *spans) {
    Field f;
    int r, status = OK;
    Buf all = b, tid = {NULL, NULL}, sid = {NULL, NULL}, pid = {NULL, NULL}, name = {NULL, NULL};
    Buf status_buf = {NULL, NULL};
    uint64_t start = 0, end = 0, kind = 0;
    Py_ssize_t n_attrs = 0, n_events = 0;
    int have_status = 0;
    while ((r = next_field(&b, &f)) == 1) {
        switch (f.number) {
        case 1: if (f.wire == 2) tid = f.sub; break;
        case 2: if (f.wire == 2) sid = f.sub; break;
        case 4: if (f.wire == 2) pid = f.sub; break;
        case 3:
            if (check_utf8(&f) != OK) return FALLBACK;
            break;
        case 5:
            if (f.wire == 2) {
                if (name.p != NULL && !utf8_valid(name.p, name.end - name.p)) return FALLBACK;
                name = f.sub;
            }
            break;
        case 6: if (f.wire == 0) kind = f.value; break;
        case 7: if (f.wire == 1) start = f.value; break;
        case 8: if (f.wire == 1) end = f.value; break;
        case 9: if (f.wire == 2 && ++n_attrs > MAX_ATTRS) return FALLBACK; break;
        case 11: if (f.wire == 2 && ++n_events > MAX_EVENTS) return FALLBACK; break;
        case 13:
            if (f.wire == 2 && (status = check_message(sc, f.sub, LINK_STRINGS, 1, 4)) != OK) return status;
            break;
        case 15:
            if (f.wire == 2) {
                if (have_status++) return FALLBACK;
                status_buf = f.sub;
            }
            break;
        }
    }
    if (r < 0) return FALLBACK;
    uint64_t code = 0;
    Buf message = {NULL, NULL};
    if (have_status) {
        Buf sb = status_buf;
        while ((r = next_field(&sb, &f)) == 1) {
            if (f.number == 2 && f.wire == 2) {
                if (message.p != NULL && !utf8_valid(message.p, message.end - message.p)) return FALLBACK;
                message = f.sub;
            } else if (f.number == 3 && f.wire == 0)
                code = f.value;
        }
        if (r < 0) return FALLBACK;
    }
    PyObject *attrs = NULL, *events = NULL, *name_str = NULL, *message_str = NULL;
    attrs = PyDict_New();
    events = PyList_New(0);
    if (attrs == NULL || events == NULL) goto fail;
    if ((status = key_values(sc, all, 9, 0, MAX_ATTRS, attrs)) != OK) goto done;
    b = all;
    while ((r = next_field(&b, &f)) == 1)
        if (f.number == 11 && f.wire == 2 && (status = event(sc, f.sub, events)) != OK) goto done;
    name_str = name.p == NULL ? (Py_INCREF(EMPTY_STR), EMPTY_STR) : make_str(sc, name, 0, &status);
    if (name_str == NULL) goto done;
    message_str = message.p == NULL ? (Py_INCREF(EMPTY_STR), EMPTY_STR) : make_str(sc, message, 0, &status);
    if (message_str == NULL) goto done;
    PyObject *item = Py_BuildValue(
        "(NNNNiKKiNNN)", bytes_of(tid), bytes_of(sid), bytes_of(pid), name_str, (int)(int32_t)kind,
        (unsigned long long)start, (unsigned long long)end, (int)(int32_t)code, message_str, attrs, events);
    if (item == NULL) return FAIL; /* Py_BuildValue's N consumed the references */
    int err = PyList_Append(spans, item);
    Py_DECREF(item);
    return err < 0 ? FAIL : OK;
fail:
    status = FAIL;
done:
    Py_XDECREF(attrs);
    Py_XDECREF(events);
    Py_XDECREF(name_str);
    Py_XDECREF(message_str);
    return status;
}

/* A ScopeSpans -> (scope name, spans) appended to scopes. */
static int scope_spans(Scan *sc, Buf b, PyObject *scopes) {
    Field f;
    int r, status = OK, have_scope = 0;
    Buf all = b, scope = {NULL, NULL}, scope_name = {NULL, NULL};
    while ((r = next_field(&b, &f)) == 1) {
        if (f.number == 1 && f.wire == 2) {
            if (have_scope++) return FALLBACK;
            scope = f.sub;
        } else if (f.number == 3 && check_utf8(&f) != OK)
            return FALLBACK;
    }
    if (r < 0) return FALLBACK;
    if (have_scope) {
        if ((status = check_message(sc, scope, SCOPE_STRINGS, 2, 3)) != OK) return status;
        Buf sb = scope;
        while ((r = next_field(&sb, &f)) == 1)
            if (f.number == 1 && f.wire == 2) scope_name = f.sub;
    }
    PyObject *spans = PyList_New(0);
    if (spans == NULL) return FAIL;
    b = all;
    while ((r = next_field(&b, &f)) == 1)
        if (f.number == 2 && f.wire == 2 && (status = span(sc, f.sub, spans)) != OK) {
            Py_DECREF(spans);
            return status;
        }
    PyObject *name_str = scope_name.p == NULL ? (Py_INCREF(EMPTY_STR), EMPTY_STR) : make_value_str(sc, scope_name, &status);
    if (name_str == NULL) {
        Py_DECREF(spans);
        return status;
    }
    PyObject *item = PyTuple_Pack(2, name_str, spans);
    Py_DECREF(name_str);
    Py_DECREF(spans);
    if (item == NULL) return FAIL;
    int err = PyList_Append(scopes, item);
    Py_DECREF(item);
    return err < 0 ? FAIL : OK;
}

/* A ResourceSpans -> (resource attrs, scopes) appended to out. */
static int resource_spans(Scan *sc, Buf b, PyObject *out) {
    Field f;
    int r, status = OK, have_resource = 0;
    Buf all = b, resource = {NULL, NULL};
    while ((r = next_field(&b, &f)) == 1) {
        if (f.number == 1 && f.wire == 2) {
            if (have_resource++) return FALLBACK;
            resource = f.sub;
        } else if (f.number == 3 && check_utf8(&f) != OK)
            return FALLBACK;
    }
    if (r < 0) return FALLBACK;
    PyObject *attrs = PyDict_New(), *scopes = PyList_New(0);
    if (attrs == NULL || scopes == NULL) {
        status = FAIL;
        goto done;
    }
    if (have_resource) {
        Buf rb = resource;
        while ((r = next_field(&rb, &f)) == 1)
            if (f.number == 3 && f.wire == 2 && (status = check_message(sc, f.sub, ENTITY_REF_STRINGS, 4, 0)) != OK)
                goto done;
        if (r < 0) {
            status = FALLBACK;
            goto done;
        }
        if ((status = key_values(sc, resource, 1, 0, MAX_ATTRS, attrs)) != OK) goto done;
    }
    b = all;
    while ((r = next_field(&b, &f)) == 1)
        if (f.number == 2 && f.wire == 2 && (status = scope_spans(sc, f.sub, scopes)) != OK) goto done;
    PyObject *item = PyTuple_Pack(2, attrs, scopes);
    if (item == NULL || PyList_Append(out, item) < 0) status = FAIL;
    Py_XDECREF(item);
done:
    Py_XDECREF(attrs);
    Py_XDECREF(scopes);
    return status;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer body;
    Py_ssize_t lim;
    PyObject *event_names, *truncate;
    if (!PyArg_ParseTuple(args, "y*nO!O:scan", &body, &lim, &PyFrozenSet_Type, &event_names, &truncate)) return NULL;
    Scan *sc = PyMem_Calloc(1, sizeof(Scan));
    PyObject *out = sc == NULL ? NULL : PyList_New(0);
    int status = out == NULL ? FAIL : OK;
    if (sc != NULL) {
        sc->lim = lim;
        sc->event_names = event_names;
        sc->truncate = truncate;
    }
    Buf b = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    Field f;
    int r = 0;
    while (status == OK && (r = next_field(&b, &f)) == 1)
        if (f.number == 1 && f.wire == 2) status = resource_spans(sc, f.sub, out);
    if (status == OK && r < 0) status = FALLBACK;
    if (sc != NULL) {
        for (int i = 0; i < CACHE_SIZE; i++) Py_XDECREF(sc->cache[i].str);
        PyMem_Free(sc);
    }
    PyBuffer_Release(&body);
    if (status == OK) return out;
    Py_XDECREF(out);
    if (status == FAIL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- normalising one span ------------------------------------------------------------- */

/* normalize_span(ctx, resource, scope, trace_id, span_id, parent_span_id, name, kind, start,
 * end, status_code, status_message, attrs, events) -> row dict | None
 *
 * normalize.Normalizer.span's row, built in C (the Python method is the reference and the
 * fallback; tests/collector/test_otlpscan.py compares the two on generated spans). None, with
 * nothing changed, for what it leaves to the reference: a sample weight that makes it warn,
 * message attributes that are not strings or are indexed (gen_ai.prompt.0.*), and a reply
 * text that _semconv cannot read. ctx is Normalizer._c_ctx (see there for its fields). The
 * caller adds the row and its assertion rows.
 */

enum {
    K_OPERATION, K_REQUEST_TYPE, K_OI_KIND, K_REFUSAL, K_REFUSAL_SOURCE, K_REFUSAL_CATEGORY, K_RESPONSE_ID,
    K_FINISH_REASONS, K_COMPLETION_FINISH, K_COMPLETION_REFUSAL, K_COST, K_SAMPLE_WEIGHT, K_ERROR_TYPE,
    K_EXCEPTION_TYPE, K_PROMPT_NAME, K_INPUT_MESSAGES, K_OUTPUT_MESSAGES, K_N_KEYS
};
static const char *KEY_NAMES[K_N_KEYS] = {
    "gen_ai.operation.name", "llm.request.type", "openinference.span.kind", "llmpulse.refusal",
    "llmpulse.refusal.source", "llmpulse.refusal.category", "gen_ai.response.id", "gen_ai.response.finish_reasons",
    "gen_ai.completion.0.finish_reason", "gen_ai.completion.0.refusal", "llmpulse.cost.usd", "llmpulse.sample_weight",
    "error.type", "exception.type", "gen_ai.prompt.name", "gen_ai.input.messages", "gen_ai.output.messages",
};
static PyObject *KEYS[K_N_KEYS];

/* Alias lists, first present wins (llmpulse._semconv and normalize.py name the same). */
#define MAX_ALIASES 4
typedef struct {
    const char *names[MAX_ALIASES + 1];
    PyObject *keys[MAX_ALIASES];
    int n;
} Aliases;
static Aliases A_PROVIDER = {.names = {"gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", NULL}};
static Aliases A_REQUEST_MODEL = {.names = {"gen_ai.request.model", "llm.request.model", "llm.model_name", NULL}};
static Aliases A_RESPONSE_MODEL = {.names = {"gen_ai.response.model", "llm.response.model", "llm.model_name", NULL}};
static Aliases A_INPUT = {.names = {"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                           "llm.usage.prompt_tokens", NULL}};
static Aliases A_OUTPUT = {.names = {"gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                            "llm.token_count.completion", "llm.usage.completion_tokens", NULL}};
static Aliases A_CACHE_READ = {.names = {"gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                                "llm.token_count.prompt_details.cache_read", NULL}};
static Aliases A_CACHE_WRITE = {.names = {"gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                                 "llm.token_count.prompt_details.cache_write", NULL}};
static Aliases A_REASONING = {.names = {"gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                               "llm.token_count.completion_details.reasoning", NULL}};
static Aliases A_MARKERS = {.names = {"gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model", "llm.model_name", NULL}};
static Aliases A_TTFT = {.names = {"gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token", NULL}};
static Aliases A_STREAM = {.names = {"gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming", NULL}};
static Aliases A_PROMPT_VERSION = {.names = {"llmpulse.prompt.version", "llm.prompt_template.version", NULL}};
static Aliases A_USER = {.names = {"user.id", "llmpulse.user_id", "enduser.id", NULL}};
static Aliases A_SESSION = {.names = {"session.id", "llmpulse.session_id", "gen_ai.conversation.id", NULL}};
static Aliases A_RAW_INPUT = {.names = {"llmpulse.input", "input.value", NULL}};
static Aliases A_RAW_OUTPUT = {.names = {"llmpulse.output", "output.value", NULL}};
/* the first keys of indexed messages (OpenLLMetry, OpenInference): left to the reference */
static Aliases A_INDEXED = {.names = {"gen_ai.prompt.0.role", "gen_ai.prompt.0.content", "llm.input_messages.0.message.role",
                             "llm.input_messages.0.message.content", NULL}};
static Aliases A_INDEXED_OUT = {.names = {"gen_ai.completion.0.role", "gen_ai.completion.0.content",
                                 "llm.output_messages.0.message.role", "llm.output_messages.0.message.content", NULL}};
static Aliases *ALL_ALIASES[] = {&A_PROVIDER, &A_REQUEST_MODEL, &A_RESPONSE_MODEL, &A_INPUT, &A_OUTPUT, &A_CACHE_READ,
                                 &A_CACHE_WRITE, &A_REASONING, &A_MARKERS, &A_TTFT, &A_STREAM, &A_PROMPT_VERSION,
                                 &A_USER, &A_SESSION, &A_RAW_INPUT, &A_RAW_OUTPUT, &A_INDEXED, &A_INDEXED_OUT, NULL};

enum {
    C_START, C_END, C_DURATION, C_TRACE, C_SPAN, C_PARENT, C_NAME, C_KIND, C_STATUS_CODE, C_STATUS_MESSAGE, C_SERVICE,
    C_ENVIRONMENT, C_RELEASE, C_SCOPE, C_IS_LLM, C_OPERATION, C_PROVIDER, C_REQUEST_MODEL, C_RESPONSE_MODEL, C_MODEL,
    C_PROMPT_NAME, C_PROMPT_VERSION, C_RESPONSE_ID, C_INPUT_TOKENS, C_OUTPUT_TOKENS, C_CACHE_READ, C_CACHE_WRITE,
    C_REASONING, C_COST, C_TTFT, C_STREAM, C_FINISH_REASONS, C_REFUSAL, C_REFUSAL_SOURCE, C_REFUSAL_CATEGORY,
    C_ERROR_TYPE, C_SAMPLE_WEIGHT, C_USER, C_SESSION, C_INPUT, C_OUTPUT, C_ATTRIBUTES, C_N
};
static const char *COLUMN_NAMES[C_N] = {
    "start_time", "end_time", "duration_s", "trace_id", "span_id", "parent_span_id", "name", "kind", "status_code",
    "status_message", "service", "environment", "release", "scope", "is_llm", "operation", "provider",
    "request_model", "response_model", "model", "prompt_name", "prompt_version", "response_id", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "ttft_s", "stream",
    "finish_reasons", "refusal", "refusal_source", "refusal_category", "error_type", "sample_weight", "user_id",
    "session_id", "input", "output", "attributes",
};
static PyObject *COLUMNS[C_N];
static PyObject *S_PROVIDER, *S_HEURISTIC, *S_CONTENT_FILTER, *S_REFUSAL_WORD, *S_EXCEPTION, *S_LLM, *S_EMBEDDING,
    *S_LOWER, *S_CATEGORY, *ONE;

typedef struct {
    PyObject *template_row;
    Py_ssize_t attr_chars, content_chars;
    PyObject *project, *models, *cost, *detect, *output_text, *dumps, *truncate;
    PyObject *request_types, *oi_kinds, *not_model_calls, *consumed_genai, *consumed_always;
} Ctx;

/* attrs.get(key): borrowed, NULL when absent (or on error, with the exception set). */
static inline PyObject *get(PyObject *attrs, PyObject *key) { return PyDict_GetItemWithError(attrs, key); }

/* normalize._text: a str as is, an int or float as str(), "" for anything else. New reference. */
static PyObject *text_of(PyObject *v) {
    if (v != NULL && PyUnicode_CheckExact(v)) {
        Py_INCREF(v);
        return v;
    }
    if (v != NULL && (PyLong_CheckExact(v) || PyFloat_CheckExact(v))) return PyObject_Str(v);
    Py_INCREF(EMPTY_STR);
    return EMPTY_STR;
}

/* _semconv._first: the first alias with a value that is not None and not "". Borrowed. */
static PyObject *first(PyObject *attrs, Aliases *a) {
    for (int i = 0; i < a->n; i++) {
        PyObject *v = get(attrs, a->keys[i]);
        if (v == NULL) {
            if (PyErr_Occurred()) return NULL;
            continue;
        }
        if (v == Py_None || (PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) == 0)) continue;
        return v;
    }
    return NULL;
}

/* normalize._tokens(_semconv._int(v)): a count below 2**53, else -1 (absent). */
static long long tokens_of(PyObject *v) {
    if (v == NULL || PyBool_Check(v)) return -1;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || n < 0 || n >= (1LL << 53)) {
            PyErr_Clear();
            return -1;
        }
        return n;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (d >= 0 && d < 9007199254740992.0 && d == (double)(long long)d) return (long long)d;
        return -1;
    }
    if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        const char *s = (const char *)PyUnicode_DATA(v);
        if (n == 0 || n >= 20) return -1;
        unsigned long long x = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return -1;
            x = x * 10 + (unsigned long long)(s[i] - '0');
        }
        return x < (1ULL << 53) ? (long long)x : -1;
    }
    return -1;
}

/* normalize._number: a finite int or float >= 0 as float, else None (bools are not numbers).
   NULL with an exception only on memory errors. */
static PyObject *number_of(PyObject *v) {
    double d;
    if (v != NULL && PyFloat_CheckExact(v)) d = PyFloat_AS_DOUBLE(v);
    else if (v != NULL && PyLong_CheckExact(v)) {
        d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) return NULL; /* past a double: the reference raises too */
    } else
        Py_RETURN_NONE;
    if (d >= 0 && d < Py_HUGE_VAL) return PyFloat_FromDouble(d);
    Py_RETURN_NONE;
}

static PyObject *cut(Ctx *c, PyObject *s, Py_ssize_t lim) {
    if (PyUnicode_GET_LENGTH(s) <= lim) {
        Py_INCREF(s);
        return s;
    }
    PyObject *n = PyLong_FromSsize_t(lim);
    if (n == NULL) return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(c->truncate, s, n, NULL);
    Py_DECREF(n);
    return r;
}

static int set_steal(PyObject *row, int column, PyObject *value) {
    if (value == NULL) return -1;
    int r = PyDict_SetItem(row, COLUMNS[column], value);
    Py_DECREF(value);
    return r;
}

static PyObject *token_obj(long long n) { return n < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLongLong(n); }

/* Normalizer._content: the messages of one side as stored, "" when absent, NULL+FALLBACK for
   what the reference does (JSON of a non-string value, indexed messages). used_raw is the raw
   key taken, if any (borrowed). */
static PyObject *content(PyObject *attrs, PyObject *key, Aliases *indexed, Aliases *raw, PyObject **used_raw, int *fallback) {
    PyObject *v = get(attrs, key);
    if (v == NULL && PyErr_Occurred()) return NULL;
    if (v != NULL && v != Py_None) {
        if (!PyUnicode_CheckExact(v)) goto fall;
        Py_INCREF(v);
        return v;
    }
    for (int i = 0; i < indexed->n; i++) {
        int has = PyDict_Contains(attrs, indexed->keys[i]);
        if (has < 0) return NULL;
        if (has) goto fall;
    }
    for (int i = 0; i < raw->n; i++) {
        v = get(attrs, raw->keys[i]);
        if (v == NULL && PyErr_Occurred()) return NULL;
        if (v != NULL && v != Py_None) {
            if (!PyUnicode_CheckExact(v)) goto fall;
            *used_raw = raw->keys[i];
            Py_INCREF(v);
            return v;
        }
    }
    Py_INCREF(EMPTY_STR);
    return EMPTY_STR;
fall:
    *fallback = 1;
    return NULL;
}

/* Normalizer._c_ctx unpacked: one tuple read per span (no format string to parse). */
static int ctx_of(PyObject *t, Ctx *c) {
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 15) goto bad;
    PyObject **f = &PyTuple_GET_ITEM(t, 0);
    c->template_row = f[0];
    c->attr_chars = PyLong_AsSsize_t(f[1]);
    c->content_chars = PyLong_AsSsize_t(f[2]);
    if ((c->attr_chars == -1 || c->content_chars == -1) && PyErr_Occurred()) return -1;
    c->project = f[3];
    c->models = f[4];
    c->cost = f[5];
    c->detect = f[6];
    c->output_text = f[7];
    c->dumps = f[8];
    c->truncate = f[9];
    c->request_types = f[10];
    c->oi_kinds = f[11];
    c->not_model_calls = f[12];
    c->consumed_genai = f[13];
    c->consumed_always = f[14];
    if (PyDict_CheckExact(c->template_row) && PyDict_Check(c->request_types) && PyDict_Check(c->oi_kinds) &&
        PyFrozenSet_Check(c->not_model_calls) && PyFrozenSet_Check(c->consumed_genai) &&
        PyFrozenSet_Check(c->consumed_always))
        return 0;
bad:
    PyErr_SetString(PyExc_TypeError, "normalize_span: ctx must be Normalizer._c_ctx (a 15-tuple)");
    return -1;
}

#define CHECK(x) do { if ((x) < 0) goto error; } while (0)
#define GET(dst, key) do { dst = get(attrs, key); if (dst == NULL && PyErr_Occurred()) goto error; } while (0)

static PyObject *normalize_span(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "normalize_span takes 14 arguments");
        return NULL;
    }
    Ctx c;
    if (ctx_of(args[0], &c) < 0) return NULL;
    PyObject *resource = args[1], *scope = args[2], *name = args[6], *message = args[11], *attrs = args[12],
             *events = args[13];
    if (!PyTuple_CheckExact(resource) || PyTuple_GET_SIZE(resource) != 3 || !PyDict_CheckExact(attrs) ||
        !PyList_CheckExact(events) || !PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(message)) {
        PyErr_SetString(PyExc_TypeError, "normalize_span: resource must be a 3-tuple, attrs a dict, events a list");
        return NULL;
    }
    long long start = PyLong_AsLongLong(args[8]), end = PyLong_AsLongLong(args[9]);
    if (PyErr_Occurred()) return NULL;

    int fallback = 0;
    PyObject *row = PyDict_Copy(c.template_row);
    PyObject *operation = NULL, *provider = NULL, *request_model = NULL, *response_model = NULL, *model = NULL;
    PyObject *reasons = NULL, *output_text = NULL, *cost = NULL, *in_text = NULL, *out_text = NULL, *v, *t;
    PyObject *used_in = NULL, *used_out = NULL;
    if (row == NULL) return NULL;

    CHECK(PyDict_SetItem(row, COLUMNS[C_START], args[8]));
    CHECK(PyDict_SetItem(row, COLUMNS[C_END], args[9]));
    CHECK(set_steal(row, C_DURATION, PyFloat_FromDouble((double)(end - start) / 1e9)));
    CHECK(PyDict_SetItem(row, COLUMNS[C_TRACE], args[3]));
    CHECK(PyDict_SetItem(row, COLUMNS[C_SPAN], args[4]));
    CHECK(PyDict_SetItem(row, COLUMNS[C_PARENT], args[5]));
    CHECK(set_steal(row, C_NAME, cut(&c, name, c.attr_chars)));
    CHECK(PyDict_SetItem(row, COLUMNS[C_KIND], args[7]));
    if (PyObject_IsTrue(args[10])) CHECK(PyDict_SetItem(row, COLUMNS[C_STATUS_CODE], args[10]));
    if (PyUnicode_GET_LENGTH(message)) CHECK(set_steal(row, C_STATUS_MESSAGE, cut(&c, message, c.attr_chars)));
    CHECK(PyDict_SetItem(row, COLUMNS[C_SERVICE], PyTuple_GET_ITEM(resource, 0)));
    CHECK(PyDict_SetItem(row, COLUMNS[C_ENVIRONMENT], PyTuple_GET_ITEM(resource, 1)));
    CHECK(PyDict_SetItem(row, COLUMNS[C_RELEASE], PyTuple_GET_ITEM(resource, 2)));
    CHECK(PyDict_SetItem(row, COLUMNS[C_SCOPE], scope));

    GET(v, KEYS[K_OPERATION]);
    int has_operation = v != NULL;
    if (v != NULL && PyUnicode_CheckExact(v)) {
        operation = v;
        Py_INCREF(operation);
    } else {
        GET(v, KEYS[K_REQUEST_TYPE]);
        t = text_of(v);
        if (t == NULL) goto error;
        operation = PyDict_GetItemWithError(c.request_types, t);
        Py_DECREF(t);
        if (operation == NULL && PyErr_Occurred()) goto error;
        if (operation == NULL || PyUnicode_GET_LENGTH(operation) == 0) {
            GET(v, KEYS[K_OI_KIND]);
            t = text_of(v);
            if (t == NULL) goto error;
            operation = PyDict_GetItemWithError(c.oi_kinds, t);
            Py_DECREF(t);
            if (operation == NULL && PyErr_Occurred()) goto error;
        }
        operation = operation == NULL ? EMPTY_STR : operation;
        Py_INCREF(operation);
    }
    CHECK(PyDict_SetItem(row, COLUMNS[C_OPERATION], operation));
    int genai = has_operation;
    if (!genai) {
        GET(v, KEYS[K_OI_KIND]);
        if (v != NULL && PyUnicode_CheckExact(v))
            genai = PyUnicode_Compare(v, S_LLM) == 0 || PyUnicode_Compare(v, S_EMBEDDING) == 0;
        for (int i = 0; !genai && i < A_MARKERS.n; i++) {
            int has = PyDict_Contains(attrs, A_MARKERS.keys[i]);
            CHECK(has);
            genai = has;
        }
    }
    int in_calls = PySet_Contains(c.not_model_calls, operation);
    CHECK(in_calls);
    int is_llm = genai && !in_calls;
    long long input_tokens = -1, output_tokens = -1, cache_read = -1, cache_write = -1;
    if (!genai) {
        CHECK(set_steal(row, C_FINISH_REASONS, PyList_New(0)));
    } else {
        PyObject *refusal_verdict;
        GET(refusal_verdict, KEYS[K_REFUSAL]);
        int verdict = refusal_verdict != NULL && PyBool_Check(refusal_verdict);
        /* _semconv.from_attributes */
        v = first(attrs, &A_RESPONSE_MODEL);
        if (v == NULL && PyErr_Occurred()) goto error;
        response_model = v != NULL && PyUnicode_CheckExact(v) ? v : EMPTY_STR;
        Py_INCREF(response_model);
        input_tokens = tokens_of(first(attrs, &A_INPUT));
        output_tokens = tokens_of(first(attrs, &A_OUTPUT));
        cache_read = tokens_of(first(attrs, &A_CACHE_READ));
        cache_write = tokens_of(first(attrs, &A_CACHE_WRITE));
        long long reasoning = tokens_of(first(attrs, &A_REASONING));
        if (PyErr_Occurred()) goto error;
        reasons = PyList_New(0);
        if (reasons == NULL) goto error;
        GET(v, KEYS[K_FINISH_REASONS]);
        if (v != NULL && PyUnicode_CheckExact(v)) {
            CHECK(PyList_Append(reasons, v));
        } else if (v != NULL && (PyList_Check(v) || PyTuple_Check(v))) {
            PyObject *seq = PySequence_Fast(v, "");
            if (seq == NULL) goto error;
            for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
                PyObject *r = PySequence_Fast_GET_ITEM(seq, i);
                if (PyUnicode_Check(r) && PyList_Append(reasons, r) < 0) {
                    Py_DECREF(seq);
                    goto error;
                }
            }
            Py_DECREF(seq);
        } else {
            GET(v, KEYS[K_COMPLETION_FINISH]);
            if (v != NULL && PyUnicode_Check(v)) CHECK(PyList_Append(reasons, v));
        }
        if (!verdict) {
            output_text = PyObject_CallOneArg(c.output_text, attrs);
            if (output_text == NULL) {
                PyErr_Clear(); /* the reference reads the span again, with a warning */
                fallback = 1;
                goto error;
            }
        }
        int provider_refusal = 0;
        PyObject *refusal_category = EMPTY_STR;
        GET(v, KEYS[K_COMPLETION_REFUSAL]);
        if (v != NULL && PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v)) provider_refusal = 1;
        int has_filter = PySequence_Contains(reasons, S_CONTENT_FILTER);
        CHECK(has_filter);
        if (has_filter) {
            provider_refusal = 1;
            refusal_category = S_CONTENT_FILTER;
        } else {
            int has_refusal = PySequence_Contains(reasons, S_REFUSAL_WORD);
            CHECK(has_refusal);
            if (has_refusal) provider_refusal = 1;
        }
        /* provider, request model, model */
        v = first(attrs, &A_PROVIDER);
        if (v == NULL && PyErr_Occurred()) goto error;
        provider = v != NULL && PyUnicode_Check(v) ? PyObject_CallMethodNoArgs(v, S_LOWER) : (Py_INCREF(EMPTY_STR), EMPTY_STR);
        if (provider == NULL) goto error;
        v = first(attrs, &A_REQUEST_MODEL);
        if (v == NULL && PyErr_Occurred()) goto error;
        request_model = v != NULL && PyUnicode_Check(v) ? v : EMPTY_STR;
        Py_INCREF(request_model);
        int has_request = PyUnicode_GET_LENGTH(request_model) > 0;
        if (c.models == Py_None) {
            model = PyUnicode_GET_LENGTH(response_model) ? response_model : request_model;
            Py_INCREF(model);
        } else if (PyUnicode_GET_LENGTH(response_model)) {
            model = response_model;
            Py_INCREF(model);
            if (has_request) {
                PyObject *key = PyTuple_Pack(3, c.project, provider, request_model);
                PyObject *r = key == NULL ? NULL : PyObject_CallMethod(c.models, "learn", "OO", key, response_model);
                Py_XDECREF(key);
                if (r == NULL) goto error;
                Py_DECREF(r);
            }
        } else {
            model = NULL;
            if (has_request) {
                PyObject *key = PyTuple_Pack(3, c.project, provider, request_model);
                model = key == NULL ? NULL : PyObject_CallMethod(c.models, "answer", "(O)", key);
                Py_XDECREF(key);
                if (model == NULL) goto error;
                int truthy = PyObject_IsTrue(model);
                CHECK(truthy);
                if (!truthy) Py_CLEAR(model);
            }
            if (model == NULL) {
                model = request_model;
                Py_INCREF(model);
            }
        }
        CHECK(set_steal(row, C_IS_LLM, PyLong_FromLong(is_llm)));
        CHECK(PyDict_SetItem(row, COLUMNS[C_PROVIDER], provider));
        CHECK(PyDict_SetItem(row, COLUMNS[C_REQUEST_MODEL], request_model));
        CHECK(PyDict_SetItem(row, COLUMNS[C_RESPONSE_MODEL], response_model));
        CHECK(PyDict_SetItem(row, COLUMNS[C_MODEL], model));
        GET(v, KEYS[K_RESPONSE_ID]);
        CHECK(PyDict_SetItem(row, COLUMNS[C_RESPONSE_ID], v != NULL && PyUnicode_Check(v) ? v : EMPTY_STR));
        CHECK(set_steal(row, C_INPUT_TOKENS, PyLong_FromLongLong(input_tokens < 0 ? 0 : input_tokens)));
        CHECK(set_steal(row, C_OUTPUT_TOKENS, PyLong_FromLongLong(output_tokens < 0 ? 0 : output_tokens)));
        CHECK(set_steal(row, C_CACHE_READ, PyLong_FromLongLong(cache_read < 0 ? 0 : cache_read)));
        CHECK(set_steal(row, C_CACHE_WRITE, PyLong_FromLongLong(cache_write < 0 ? 0 : cache_write)));
        CHECK(set_steal(row, C_REASONING, PyLong_FromLongLong(reasoning < 0 ? 0 : reasoning)));
        {
            Py_ssize_t n = PyList_GET_SIZE(reasons) < 16 ? PyList_GET_SIZE(reasons) : 16;
            PyObject *kept = PyList_New(n);
            if (kept == NULL) goto error;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *r = PyList_GET_ITEM(reasons, i);
                PyObject *short_r = PyUnicode_Substring(r, 0, 256);
                if (short_r == NULL) {
                    Py_DECREF(kept);
                    goto error;
                }
                PyList_SET_ITEM(kept, i, short_r);
            }
            CHECK(set_steal(row, C_FINISH_REASONS, kept));
        }
        GET(v, KEYS[K_COST]);
        cost = v == NULL ? (Py_INCREF(Py_None), Py_None) : number_of(v);
        if (cost == NULL) goto error;
        if (cost == Py_None && is_llm && PyUnicode_GET_LENGTH(model)) {
            Py_DECREF(cost);
            PyObject *a[6] = {PyUnicode_GET_LENGTH(provider) ? provider : Py_None, model, NULL, NULL, NULL, NULL};
            a[2] = token_obj(input_tokens);
            a[3] = token_obj(output_tokens);
            a[4] = token_obj(cache_read);
            a[5] = token_obj(cache_write);
            cost = a[2] && a[3] && a[4] && a[5] ? PyObject_Vectorcall(c.cost, a, 6, NULL) : NULL;
            for (int i = 2; i < 6; i++) Py_XDECREF(a[i]);
            if (cost == NULL) goto error;
        }
        CHECK(PyDict_SetItem(row, COLUMNS[C_COST], cost));
        if (verdict) {
            if (refusal_verdict == Py_True) {
                CHECK(PyDict_SetItem(row, COLUMNS[C_REFUSAL], ONE));
                GET(v, KEYS[K_REFUSAL_SOURCE]);
                CHECK(set_steal(row, C_REFUSAL_SOURCE, text_of(v)));
                GET(v, KEYS[K_REFUSAL_CATEGORY]);
                CHECK(set_steal(row, C_REFUSAL_CATEGORY, text_of(v)));
            }
        } else if (is_llm) {
            if (provider_refusal) {
                CHECK(PyDict_SetItem(row, COLUMNS[C_REFUSAL], ONE));
                CHECK(PyDict_SetItem(row, COLUMNS[C_REFUSAL_SOURCE], S_PROVIDER));
                CHECK(PyDict_SetItem(row, COLUMNS[C_REFUSAL_CATEGORY], refusal_category));
            } else if (PyObject_IsTrue(output_text)) {
                PyObject *match = PyObject_CallOneArg(c.detect, output_text);
                if (match == NULL) goto error;
                if (match != Py_None) {
                    PyObject *category = PyObject_GetAttr(match, S_CATEGORY);
                    int ok = category != NULL && PyDict_SetItem(row, COLUMNS[C_REFUSAL], ONE) == 0 &&
                             PyDict_SetItem(row, COLUMNS[C_REFUSAL_SOURCE], S_HEURISTIC) == 0 &&
                             PyDict_SetItem(row, COLUMNS[C_REFUSAL_CATEGORY],
                                            category != Py_None && PyObject_IsTrue(category) ? category : EMPTY_STR) == 0;
                    Py_XDECREF(category);
                    Py_DECREF(match);
                    if (!ok) goto error;
                } else
                    Py_DECREF(match);
            }
        }
        GET(v, A_TTFT.keys[0]);
        if (v == NULL || v == Py_None) GET(v, A_TTFT.keys[1]);
        if (v != NULL && v != Py_None) CHECK(set_steal(row, C_TTFT, number_of(v)));
        for (int i = 0; i < A_STREAM.n; i++) {
            GET(v, A_STREAM.keys[i]);
            if (v == Py_True) {
                CHECK(PyDict_SetItem(row, COLUMNS[C_STREAM], ONE));
                break;
            }
        }
    }
    GET(v, KEYS[K_SAMPLE_WEIGHT]);
    if (v != NULL && v != Py_None) {
        double w = -1;
        if (PyFloat_CheckExact(v)) w = PyFloat_AS_DOUBLE(v);
        else if (PyLong_CheckExact(v)) {
            w = PyLong_AsDouble(v);
            if (w == -1.0 && PyErr_Occurred()) goto error;
        }
        if (!(w >= 1 && w < Py_HUGE_VAL)) { /* the reference warns */
            fallback = 1;
            goto error;
        }
        CHECK(set_steal(row, C_SAMPLE_WEIGHT, PyFloat_FromDouble(w)));
    }
    GET(v, KEYS[K_ERROR_TYPE]);
    if (v != NULL && v != Py_None) {
        CHECK(set_steal(row, C_ERROR_TYPE, text_of(v)));
    } else {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
            PyObject *ev = PyList_GET_ITEM(events, i);
            if (!PyTuple_Check(ev) || PyTuple_GET_SIZE(ev) != 3 || !PyDict_Check(PyTuple_GET_ITEM(ev, 2))) {
                fallback = 1;
                goto error;
            }
            int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(ev, 0), S_EXCEPTION, Py_EQ);
            CHECK(eq);
            if (!eq) continue;
            PyObject *et = PyDict_GetItemWithError(PyTuple_GET_ITEM(ev, 2), KEYS[K_EXCEPTION_TYPE]);
            if (et == NULL && PyErr_Occurred()) goto error;
            t = text_of(et);
            if (t == NULL) goto error;
            if (PyUnicode_GET_LENGTH(t)) {
                CHECK(set_steal(row, C_ERROR_TYPE, t));
                break;
            }
            Py_DECREF(t);
        }
    }
    in_text = content(attrs, KEYS[K_INPUT_MESSAGES], &A_INDEXED, &A_RAW_INPUT, &used_in, &fallback);
    if (in_text == NULL) goto error;
    out_text = content(attrs, KEYS[K_OUTPUT_MESSAGES], &A_INDEXED_OUT, &A_RAW_OUTPUT, &used_out, &fallback);
    if (out_text == NULL) goto error;
    if (PyUnicode_GET_LENGTH(in_text)) CHECK(set_steal(row, C_INPUT, cut(&c, in_text, c.content_chars)));
    if (PyUnicode_GET_LENGTH(out_text)) CHECK(set_steal(row, C_OUTPUT, cut(&c, out_text, c.content_chars)));
    {
        PyObject *skip = genai ? c.consumed_genai : c.consumed_always;
        PyObject *rest = PyDict_New(), *key, *value;
        Py_ssize_t pos = 0;
        if (rest == NULL) goto error;
        while (PyDict_Next(attrs, &pos, &key, &value)) {
            int skipped = PySet_Contains(skip, key);
            if (skipped == 0 && ((used_in != NULL && PyUnicode_Compare(key, used_in) == 0) ||
                                 (used_out != NULL && PyUnicode_Compare(key, used_out) == 0)))
                skipped = 1;
            if (skipped < 0 || (!skipped && PyDict_SetItem(rest, key, value) < 0)) {
                Py_DECREF(rest);
                goto error;
            }
        }
        if (PyDict_GET_SIZE(rest)) {
            PyObject *json = PyObject_CallOneArg(c.dumps, rest);
            Py_DECREF(rest);
            if (json == NULL) { /* the reference stores "{}" with a warning */
                PyErr_Clear();
                fallback = 1;
                goto error;
            }
            PyObject *str = PyUnicode_FromEncodedObject(json, "utf-8", NULL);
            Py_DECREF(json);
            CHECK(set_steal(row, C_ATTRIBUTES, str));
        } else
            Py_DECREF(rest);
    }
    Aliases *ids[2] = {&A_USER, &A_SESSION};
    int id_columns[2] = {C_USER, C_SESSION};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < ids[k]->n; i++) {
            GET(v, ids[k]->keys[i]);
            if (v == NULL) continue;
            t = text_of(v);
            if (t == NULL) goto error;
            if (PyUnicode_GET_LENGTH(t)) {
                CHECK(set_steal(row, id_columns[k], t));
                break;
            }
            Py_DECREF(t);
        }
    }
    GET(v, KEYS[K_PROMPT_NAME]);
    CHECK(set_steal(row, C_PROMPT_NAME, text_of(v)));
    GET(v, A_PROMPT_VERSION.keys[0]);
    if (v == NULL || v == Py_None) GET(v, A_PROMPT_VERSION.keys[1]);
    CHECK(set_steal(row, C_PROMPT_VERSION, text_of(v)));
    goto done;
error:
    Py_CLEAR(row);
done:
    Py_XDECREF(operation);
    Py_XDECREF(provider);
    Py_XDECREF(request_model);
    Py_XDECREF(response_model);
    Py_XDECREF(model);
    Py_XDECREF(reasons);
    Py_XDECREF(output_text);
    Py_XDECREF(cost);
    Py_XDECREF(in_text);
    Py_XDECREF(out_text);
    if (row == NULL && fallback && !PyErr_Occurred()) Py_RETURN_NONE;
    return row;
}

/* assertion_row(template, labels, trace_id, span_id, time, attrs, keys) -> dict | None
 *
 * normalize.Normalizer._assertion's row for one gen_ai.evaluation.result event (the Python
 * method is the reference), keys being the span's (service, environment, provider, model,
 * prompt_name, prompt_version, sample_weight); None for an event it would skip with a warning,
 * which the caller then hands to the reference. */
static PyObject *S_EVAL_NAME, *S_EVAL_VALUE, *S_EVAL_LABEL, *S_EVAL_EXPLANATION, *S_STRIP, *S_PASS, *S_FAIL,
    *S_TIME, *S_LABEL, *S_SCORE, *S_EXPLANATION, *S_NAME;
static const char *ASSERTION_KEY_COLUMNS[7] = {"service", "environment", "provider", "model",
                                               "prompt_name", "prompt_version", "sample_weight"};
static PyObject *ASSERTION_KEYS[7];

static PyObject *assertion_row(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyDict_CheckExact(args[0]) || !PyDict_Check(args[1]) || !PyDict_Check(args[5]) ||
        !PyTuple_CheckExact(args[6]) || PyTuple_GET_SIZE(args[6]) != 7) {
        PyErr_SetString(PyExc_TypeError, "assertion_row(template, labels, trace_id, span_id, time, attrs, keys)");
        return NULL;
    }
    PyObject *attrs = args[5], *v, *name = NULL, *label = NULL, *score = NULL, *row = NULL;
    v = PyDict_GetItemWithError(attrs, S_EVAL_NAME);
    if (v == NULL && PyErr_Occurred()) return NULL;
    name = text_of(v);
    if (name == NULL) return NULL;
    v = PyDict_GetItemWithError(attrs, S_EVAL_VALUE);
    if (v == NULL && PyErr_Occurred()) goto done;
    if (v != NULL && (PyFloat_CheckExact(v) || PyLong_CheckExact(v))) {
        double d = PyFloat_CheckExact(v) ? PyFloat_AS_DOUBLE(v) : PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) goto done; /* math.isfinite raises on such ints too */
        if (isfinite(d)) score = PyFloat_FromDouble(d);
        else {
            Py_INCREF(Py_None);
            score = Py_None;
        }
    } else {
        Py_INCREF(Py_None);
        score = Py_None;
    }
    if (score == NULL) goto done;
    v = PyDict_GetItemWithError(attrs, S_EVAL_LABEL);
    if (v == NULL && PyErr_Occurred()) goto done;
    label = EMPTY_STR;
    if (v != NULL && PyUnicode_CheckExact(v)) {
        PyObject *stripped = PyObject_CallMethodNoArgs(v, S_STRIP);
        PyObject *lowered = stripped == NULL ? NULL : PyObject_CallMethodNoArgs(stripped, S_LOWER);
        Py_XDECREF(stripped);
        if (lowered == NULL) goto done_label;
        PyObject *mapped = PyDict_GetItemWithError(args[1], lowered);
        Py_DECREF(lowered);
        if (mapped == NULL && PyErr_Occurred()) goto done_label;
        if (mapped != NULL) label = mapped;
    }
    Py_INCREF(label);
    if (PyUnicode_GET_LENGTH(label) == 0 && score != Py_None) {
        double d = PyFloat_AS_DOUBLE(score);
        if (d >= 0.0 && d <= 1.0) {
            Py_SETREF(label, d >= 0.5 ? S_PASS : S_FAIL);
            Py_INCREF(label);
        }
    }
    if (PyUnicode_GET_LENGTH(name) == 0 || PyUnicode_GET_LENGTH(label) == 0) {
        Py_INCREF(Py_None); /* the reference skips it with a warning */
        row = Py_None;
        goto done;
    }
    row = PyDict_Copy(args[0]);
    if (row == NULL) goto done;
    PyObject *short_name = PyUnicode_Substring(name, 0, 256);
    v = PyDict_GetItemWithError(attrs, S_EVAL_EXPLANATION);
    PyObject *explanation = v == NULL && PyErr_Occurred() ? NULL : text_of(v);
    int ok = short_name != NULL && explanation != NULL && PyDict_SetItem(row, S_TIME, args[4]) == 0 &&
             PyDict_SetItem(row, COLUMNS[C_TRACE], args[2]) == 0 && PyDict_SetItem(row, COLUMNS[C_SPAN], args[3]) == 0;
    for (int i = 0; ok && i < 7; i++) ok = PyDict_SetItem(row, ASSERTION_KEYS[i], PyTuple_GET_ITEM(args[6], i)) == 0;
    ok = ok && PyDict_SetItem(row, S_NAME, short_name) == 0 && PyDict_SetItem(row, S_LABEL, label) == 0 &&
         PyDict_SetItem(row, S_SCORE, score) == 0 && PyDict_SetItem(row, S_EXPLANATION, explanation) == 0;
    Py_XDECREF(short_name);
    Py_XDECREF(explanation);
    if (!ok) Py_CLEAR(row);
    goto done;
done_label:
    label = NULL;
done:
    Py_XDECREF(name);
    Py_XDECREF(label);
    Py_XDECREF(score);
    return row;
}

/* -- native_block: rows -> one ClickHouse Native block ----------------------------------- */
/*
 * native_block(rows, columns) -> bytes | None
 *
 * The bytes clickhouse-connect would send for an insert of `rows` (its NativeTransform, column
 * oriented, one block): LEB128 column and row counts, then per column its header and data.
 * `rows` is a list of dicts holding exactly the keys of `columns` (the normaliser's rows);
 * `columns` is a tuple of (key, header, code, default) in table order: header is the column's
 * name and wire type as Native writes them, code the wire type (W_* below), default what None
 * stands for in a column that is not Nullable (storage's _fill_defaults does the same).
 *
 * Returns None, having written nothing, for anything clickhouse-connect would take differently
 * or refuse: a row that is not a dict or has other keys, a value of another Python type (bool,
 * bytes, a float in an integer column, ...), an integer out of the column's range, a str with
 * lone surrogates. The caller then keeps the rows as JSON and the driver's path handles them.
 * Checked against clickhouse-connect's own bytes by tests/collector/test_native.py.
 */
enum { W_STRING, W_UINT8, W_UINT64, W_FLOAT64, W_NULLABLE_FLOAT64, W_INT64, W_ARRAY_STRING, W_N };

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Out;

static int out_reserve(Out *o, Py_ssize_t n) {
    if (o->cap - o->len >= n) return OK;
    Py_ssize_t cap = o->cap ? o->cap : 1 << 16;
    while (cap - o->len < n) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return FAIL;
        }
        cap *= 2;
    }
    char *p = PyMem_Realloc(o->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    o->p = p;
    o->cap = cap;
    return OK;
}

static int out_write(Out *o, const void *s, Py_ssize_t n) {
    if (out_reserve(o, n) != OK) return FAIL;
    memcpy(o->p + o->len, s, (size_t)n);
    o->len += n;
    return OK;
}

static int out_leb128(Out *o, uint64_t v) {
    uint8_t b[10];
    int n = 0;
    do {
        b[n] = v & 0x7F;
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    return out_write(o, b, n);
}

/* An exception a conversion raised for a value out of range or not encodable: clear it, fall back. */
static int conversion_failed(void) {
    if (PyErr_ExceptionMatches(PyExc_OverflowError) || PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        return FALLBACK;
    }
    return FAIL;
}

static int put_str(Out *o, PyObject *v) {
    if (!PyUnicode_CheckExact(v)) return FALLBACK;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL) return conversion_failed();
    if (out_leb128(o, (uint64_t)n) != OK || out_write(o, s, n) != OK) return FAIL;
    return OK;
}

static int as_u64(PyObject *v, uint64_t max, uint64_t *out) {
    if (!PyLong_CheckExact(v)) return FALLBACK;
    unsigned long long x = PyLong_AsUnsignedLongLong(v); /* OverflowError for a negative number */
    if (x == (unsigned long long)-1 && PyErr_Occurred()) return conversion_failed();
    if (x > max) return FALLBACK;
    *out = x;
    return OK;
}

static int as_double(PyObject *v, double *out) {
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return OK;
    }
    if (!PyLong_CheckExact(v)) return FALLBACK;
    *out = PyLong_AsDouble(v);
    if (*out == -1.0 && PyErr_Occurred()) return conversion_failed();
    return OK;
}

/* One column's values (fixed-width types), after the header. */
static int put_fixed(Out *o, int code, PyObject *v) {
    int st;
    uint64_t u;
    double d;
    switch (code) {
    case W_UINT8:
        if ((st = as_u64(v, 0xFF, &u)) != OK) return st;
        {
            uint8_t b = (uint8_t)u;
            return out_write(o, &b, 1);
        }
    case W_UINT64:
        if ((st = as_u64(v, UINT64_MAX, &u)) != OK) return st;
        return out_write(o, &u, 8);
    case W_FLOAT64:
    case W_NULLABLE_FLOAT64:
        if ((st = as_double(v, &d)) != OK) return st;
        return out_write(o, &d, 8);
    case W_INT64: {
        if (!PyLong_CheckExact(v)) return FALLBACK;
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return FALLBACK;
        if (x == -1 && PyErr_Occurred()) return FAIL;
        int64_t i = x;
        return out_write(o, &i, 8);
    }
    }
    return FALLBACK;
}

static int native_column(Out *o, PyObject *rows, PyObject *key, int code, PyObject *dflt) {
    Py_ssize_t n = PyList_GET_SIZE(rows);
    int st;
    /* The values, None standing for the default except in the Nullable column. */
#define VALUE(i, v)                                                                                                    \
    do {                                                                                                               \
        (v) = PyDict_GetItemWithError(PyList_GET_ITEM(rows, (i)), key);                                                \
        if ((v) == NULL) return PyErr_Occurred() ? FAIL : FALLBACK;                                                    \
        if ((v) == Py_None && code != W_NULLABLE_FLOAT64) (v) = dflt;                                                  \
    } while (0)
    PyObject *v;
    if (code == W_STRING) {
        for (Py_ssize_t i = 0; i < n; i++) {
            VALUE(i, v);
            if ((st = put_str(o, v)) != OK) return st;
        }
        return OK;
    }
    if (code == W_NULLABLE_FLOAT64) { /* the null map, then every value (0 where null) */
        if (out_reserve(o, n) != OK) return FAIL;
        for (Py_ssize_t i = 0; i < n; i++) {
            VALUE(i, v);
            o->p[o->len++] = v == Py_None;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            VALUE(i, v);
            if (v == Py_None) {
                double zero = 0.0;
                if (out_write(o, &zero, 8) != OK) return FAIL;
            } else if ((st = put_fixed(o, code, v)) != OK) {
                return st;
            }
        }
        return OK;
    }
    if (code == W_ARRAY_STRING) { /* each row's end offset into the flattened items, then the items */
        uint64_t end = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            VALUE(i, v);
            if (!PyList_CheckExact(v) && !PyTuple_CheckExact(v)) return FALLBACK;
            end += (uint64_t)PySequence_Fast_GET_SIZE(v);
            if (out_write(o, &end, 8) != OK) return FAIL;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            VALUE(i, v);
            Py_ssize_t m = PySequence_Fast_GET_SIZE(v);
            PyObject **items = PySequence_Fast_ITEMS(v);
            for (Py_ssize_t j = 0; j < m; j++)
                if ((st = put_str(o, items[j])) != OK) return st;
        }
        return OK;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        VALUE(i, v);
        if ((st = put_fixed(o, code, v)) != OK) return st;
    }
    return OK;
#undef VALUE
}

static PyObject *native_block(PyObject *self, PyObject *args) {
    PyObject *rows, *columns;
    if (!PyArg_ParseTuple(args, "O!O!:native_block", &PyList_Type, &rows, &PyTuple_Type, &columns)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows), ncols = PyTuple_GET_SIZE(columns);
    for (Py_ssize_t c = 0; c < ncols; c++) {
        PyObject *spec = PyTuple_GET_ITEM(columns, c);
        if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 4 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(spec, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(spec, 1)) || !PyLong_CheckExact(PyTuple_GET_ITEM(spec, 2))) {
            PyErr_SetString(PyExc_TypeError, "native_block: each column is (key: str, header: bytes, code: int, default)");
            return NULL;
        }
        long code = PyLong_AsLong(PyTuple_GET_ITEM(spec, 2));
        if (code < 0 || code >= W_N) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "native_block: unknown wire type code %ld", code);
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyDict_CheckExact(row) || PyDict_GET_SIZE(row) != ncols) Py_RETURN_NONE;
    }
    Out o = {NULL, 0, 0};
    int st = out_leb128(&o, (uint64_t)ncols);
    if (st == OK) st = out_leb128(&o, (uint64_t)n);
    for (Py_ssize_t c = 0; c < ncols && st == OK; c++) {
        PyObject *spec = PyTuple_GET_ITEM(columns, c);
        PyObject *header = PyTuple_GET_ITEM(spec, 1);
        st = out_write(&o, PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header));
        if (st == OK)
            st = native_column(&o, rows, PyTuple_GET_ITEM(spec, 0), (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 2)),
                               PyTuple_GET_ITEM(spec, 3));
    }
    PyObject *result = NULL;
    if (st == OK) {
        result = PyBytes_FromStringAndSize(o.p, o.len);
    } else if (st == FALLBACK) {
        result = Py_None;
        Py_INCREF(result);
    }
    PyMem_Free(o.p);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(body, lim, event_names, truncate) -> list | None: an OTLP ExportTraceServiceRequest's "
     "resources, scopes and spans as plain values, or None to leave the body to the reference decoder."},
    {"normalize_span", (PyCFunction)(void (*)(void))normalize_span, METH_FASTCALL,
     "normalize_span(ctx, resource, scope, trace_id, span_id, parent_span_id, name, kind, start, end, "
     "status_code, status_message, attrs, events) -> dict | None: normalize.Normalizer.span's row, or None "
     "to leave the span to it."},
    {"assertion_row", (PyCFunction)(void (*)(void))assertion_row, METH_FASTCALL,
     "assertion_row(template, labels, trace_id, span_id, time, attrs, keys) -> dict | None: "
     "normalize.Normalizer._assertion's row, or None for an event it skips with a warning."},
    {"native_block", native_block, METH_VARARGS,
     "native_block(rows, columns) -> bytes | None: the rows as one ClickHouse Native block (what "
     "clickhouse-connect sends), or None to leave them to the driver."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlpscan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__otlpscan(void) {
    EMPTY_BYTES = PyBytes_FromStringAndSize("", 0);
    EMPTY_STR = PyUnicode_FromStringAndSize("", 0);
    if (EMPTY_BYTES == NULL || EMPTY_STR == NULL) return NULL;
    for (int i = 0; i < K_N_KEYS; i++)
        if ((KEYS[i] = PyUnicode_InternFromString(KEY_NAMES[i])) == NULL) return NULL;
    for (int i = 0; i < C_N; i++)
        if ((COLUMNS[i] = PyUnicode_InternFromString(COLUMN_NAMES[i])) == NULL) return NULL;
    for (Aliases **a = ALL_ALIASES; *a != NULL; a++)
        for ((*a)->n = 0; (*a)->names[(*a)->n] != NULL; (*a)->n++)
            if (((*a)->keys[(*a)->n] = PyUnicode_InternFromString((*a)->names[(*a)->n])) == NULL) return NULL;
    if ((S_PROVIDER = PyUnicode_InternFromString("provider")) == NULL ||
        (S_HEURISTIC = PyUnicode_InternFromString("heuristic")) == NULL ||
        (S_CONTENT_FILTER = PyUnicode_InternFromString("content_filter")) == NULL ||
        (S_REFUSAL_WORD = PyUnicode_InternFromString("refusal")) == NULL ||
        (S_EXCEPTION = PyUnicode_InternFromString("exception")) == NULL ||
        (S_LLM = PyUnicode_InternFromString("LLM")) == NULL ||
        (S_EMBEDDING = PyUnicode_InternFromString("EMBEDDING")) == NULL ||
        (S_LOWER = PyUnicode_InternFromString("lower")) == NULL ||
        (S_CATEGORY = PyUnicode_InternFromString("category")) == NULL || (ONE = PyLong_FromLong(1)) == NULL ||
        (S_EVAL_NAME = PyUnicode_InternFromString("gen_ai.evaluation.name")) == NULL ||
        (S_EVAL_VALUE = PyUnicode_InternFromString("gen_ai.evaluation.score.value")) == NULL ||
        (S_EVAL_LABEL = PyUnicode_InternFromString("gen_ai.evaluation.score.label")) == NULL ||
        (S_EVAL_EXPLANATION = PyUnicode_InternFromString("gen_ai.evaluation.explanation")) == NULL ||
        (S_STRIP = PyUnicode_InternFromString("strip")) == NULL || (S_PASS = PyUnicode_InternFromString("pass")) == NULL ||
        (S_FAIL = PyUnicode_InternFromString("fail")) == NULL || (S_TIME = PyUnicode_InternFromString("time")) == NULL ||
        (S_LABEL = PyUnicode_InternFromString("label")) == NULL ||
        (S_SCORE = PyUnicode_InternFromString("score")) == NULL ||
        (S_EXPLANATION = PyUnicode_InternFromString("explanation")) == NULL ||
        (S_NAME = PyUnicode_InternFromString("name")) == NULL)
        return NULL;
    for (int i = 0; i < 7; i++)
        if ((ASSERTION_KEYS[i] = PyUnicode_InternFromString(ASSERTION_KEY_COLUMNS[i])) == NULL) return NULL;
    return PyModule_Create(&module);
}
