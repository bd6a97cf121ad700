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
   Short strings come from the call's cache; keys are interned, so the normaliser's lookups by
   literal name compare by identity. */
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

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(body, lim, event_names, truncate) -> list | None: an OTLP ExportTraceServiceRequest's "
     "resources, scopes and spans as plain values, or None to leave the body to the reference decoder."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlpscan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__otlpscan(void) {
    EMPTY_BYTES = PyBytes_FromStringAndSize("", 0);
    EMPTY_STR = PyUnicode_FromStringAndSize("", 0);
    if (EMPTY_BYTES == NULL || EMPTY_STR == NULL) return NULL;
    return PyModule_Create(&module);
}
