/*
 * llmpulse._speedups: fast paths of the SDK exporter's processing, in C. Each has a Python
 * reference it is tested against (tests/sdk/test_speedups.py) and which runs wherever it is not
 * built or LLMPULSE_PURE_PYTHON=1: (1) the scan for refusal heads, (2) the redaction
 * prefilters, slotted records (span events, check contexts) built without their __init__, and
 * (3) reading a plain Chat Completion response.
 *
 * 1. Refusal heads.
 * RefusalDetector's built-in search is one regex, " " + (a trie of ~50 literal heads) +
 * (their tails), run over the first 400 characters of every reply. Python's re finds each
 * space quickly but then tries the head alternatives one by one at every space (~3-4 us a
 * reply here), and almost no reply holds a head at all. This finds the positions where one
 * could start; _refusal.py runs the regex only there. The contract, checked by
 * tests/sdk/test_speedups.py against a plain Python loop on generated texts:
 *
 *   Heads(heads).find(text, start) -> int
 *
 * is the least i >= start with text[i] == " " and text.startswith(head, i + 1) for some head
 * in heads, or -1. Heads are non-empty ASCII strings (ValueError otherwise); text is any str
 * (every storage width), start any int (clamped to 0..len(text)).
 *
 * Every regex match starts at such a position, so matching at each in turn finds what
 * re.search finds: the same verdicts, with the regex work done only where a head is.
 *
 *   Heads(heads).find_in_reply(text, limit) -> int
 *
 * is find(scan, 0) for the string RefusalDetector.detect scans, _blank(" " +
 * text[:limit].replace("’", "'").lower()), read from text without building it (-1: no head,
 * so no built-in pattern can match), or -2 where only Python's str.lower can build it.
 *
 * 2. Redaction prefilters. default_redact (_redact.py) looks at two "shapes" of the text's
 * UTF-8 bytes before running any pattern: a key needs a run of 15 token characters
 * [A-Za-z0-9_-]; an email an "@"; a Bearer token a digit and "earer" or "EARER"; a card or a
 * phone number a digit and, in the number shape (digit -> 0, " .()/" -> space, "-" and "+"
 * kept, anything else -> x), "+0" or a match of 0(?:[ -]000|0[ -]00[ -]00|0{12}). When none
 * holds it returns the text as it is, having built both shapes (~1-3 us for a short message).
 *
 *   might_mask(text) -> bool
 *
 * is whether any of those holds, read from the str's characters (a second pass, for the
 * hints and the Bearer word, only when there is a digit). A non-ASCII
 * character's UTF-8 bytes are all >= 0x80, so they are "other" in both shapes however many
 * there are: none of the conditions counts such bytes, and a run of them breaks a token run
 * or a number hint as one of them does. tests/sdk/test_speedups.py checks it against the
 * Python spelling of the same conditions on generated texts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct head {
    const char *text; /* ASCII, the str's own buffer */
    Py_ssize_t len;
};

typedef struct {
    PyObject_HEAD
    /* pair[c1][c2 / 8] bit c2 % 8: some head starts with c1 c2 (both ASCII) */
    uint8_t pair[128][16];
    uint8_t single[128]; /* a one-character head c1 */
    /* heads by first character: index into text/len, [first[c], first[c + 1]) */
    Py_ssize_t first[129];
    Py_ssize_t count;
    struct head *heads; /* sorted by first character */
    PyObject *owner; /* the tuple of heads (keeps their UTF-8 buffers alive) */
} Heads;

static void Heads_dealloc(Heads *self) {
    PyMem_Free(self->heads);
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int cmp_first(const void *a, const void *b) {
    const struct head *x = a, *y = b;
    return (int)(unsigned char)x->text[0] - (int)(unsigned char)y->text[0];
}

static PyObject *Heads_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *seq;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Heads() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:Heads", &seq))
        return NULL;
    PyObject *tuple = PySequence_Tuple(seq);
    if (tuple == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    Heads *self = (Heads *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(tuple);
        return NULL;
    }
    self->owner = tuple; /* dealloc releases it from here on */
    self->count = n;
    self->heads = PyMem_Calloc(n ? (size_t)n : 1, sizeof(struct head));
    if (self->heads == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *head = PyTuple_GET_ITEM(tuple, i);
        if (!PyUnicode_Check(head) || PyUnicode_GET_LENGTH(head) == 0 || !PyUnicode_IS_ASCII(head)) {
            PyErr_Format(PyExc_ValueError, "Heads: every head must be a non-empty ASCII str, got %R", head);
            Py_DECREF(self);
            return NULL;
        }
        self->heads[i].text = (const char *)PyUnicode_1BYTE_DATA(head);
        self->heads[i].len = PyUnicode_GET_LENGTH(head);
    }
    qsort(self->heads, (size_t)n, sizeof(struct head), cmp_first);
    Py_ssize_t at = 0;
    for (int c = 0; c < 128; c++) {
        self->first[c] = at;
        while (at < n && (unsigned char)self->heads[at].text[0] == c)
            at++;
    }
    self->first[128] = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *h = (const unsigned char *)self->heads[i].text;
        if (self->heads[i].len == 1)
            self->single[h[0]] = 1;
        else
            self->pair[h[0]][h[1] >> 3] |= (uint8_t)(1u << (h[1] & 7));
    }
    return (PyObject *)self;
}

/* Does a head start at text[at] (after a space at at - 1)? Any storage width. */
static int head_at(const Heads *self, int kind, const void *data, Py_ssize_t n, Py_ssize_t at) {
    Py_UCS4 c1 = PyUnicode_READ(kind, data, at);
    if (c1 >= 128)
        return 0;
    if (self->single[c1])
        return 1;
    if (at + 1 >= n)
        return 0;
    Py_UCS4 c2 = PyUnicode_READ(kind, data, at + 1);
    if (c2 >= 128 || !(self->pair[c1][c2 >> 3] & (1u << (c2 & 7))))
        return 0;
    for (Py_ssize_t h = self->first[c1]; h < self->first[c1 + 1]; h++) {
        Py_ssize_t len = self->heads[h].len;
        if (len < 2 || at + len > n)
            continue;
        const char *s = self->heads[h].text;
        Py_ssize_t k = 1;
        while (k < len && PyUnicode_READ(kind, data, at + k) == (Py_UCS4)(unsigned char)s[k])
            k++;
        if (k == len)
            return 1;
    }
    return 0;
}

/* head_at for one byte a character. */
static inline int head_at_byte(const Heads *self, const unsigned char *p, Py_ssize_t n, Py_ssize_t at) {
    unsigned c1 = p[at];
    if (c1 >= 128)
        return 0;
    if (self->single[c1])
        return 1;
    if (at + 1 >= n)
        return 0;
    unsigned c2 = p[at + 1];
    if (c2 >= 128 || !(self->pair[c1][c2 >> 3] & (1u << (c2 & 7))))
        return 0;
    for (Py_ssize_t h = self->first[c1]; h < self->first[c1 + 1]; h++) {
        Py_ssize_t len = self->heads[h].len;
        if (len >= 2 && at + len <= n && memcmp(p + at + 1, self->heads[h].text + 1, (size_t)len - 1) == 0)
            return 1;
    }
    return 0;
}

/* The first i >= start with p[i] == ' ' and a head at i + 1, or -1 (one byte a character).
   Spaces are found 16 bytes at a time: a branch per space, not per byte. */
static Py_ssize_t first_head_bytes(const Heads *self, const unsigned char *p, Py_ssize_t n, Py_ssize_t start) {
    Py_ssize_t i = start;
    Py_ssize_t last = n - 1; /* a space at n - 1 has no head after it */
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(' ');
    for (; i + 16 <= last; i += 16) {
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), space));
        while (mask) {
            Py_ssize_t at = i + __builtin_ctz(mask);
            if (head_at_byte(self, p, n, at + 1))
                return at;
            mask &= mask - 1;
        }
    }
#endif
    for (; i < last; i++) {
        if (p[i] == ' ' && head_at_byte(self, p, n, i + 1))
            return i;
    }
    return -1;
}

/* The (text: str, index: int) arguments of Heads' methods: the text (borrowed) and the index
   clamped to 0..len(text); NULL with TypeError otherwise. */
static PyObject *text_and_index(const char *method, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *index) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s takes two arguments", method);
        return NULL;
    }
    PyObject *text = args[0];
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "%s: text must be str, not %.100s", method, Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(args[1], NULL); /* clamps huge ints */
    if ((i == -1 && PyErr_Occurred()) || PyUnicode_READY(text) < 0)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    *index = i < 0 ? 0 : i > n ? n : i; /* also keeps i + 1 below n from overflowing */
    return text;
}

static PyObject *Heads_find(Heads *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t start;
    PyObject *text = text_and_index("find(text, start)", args, nargs, &start);
    if (text == NULL)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_1BYTE_KIND)
        return PyLong_FromSsize_t(first_head_bytes(self, (const unsigned char *)data, n, start));
    for (Py_ssize_t i = start; i + 1 < n; i++) {
        if (PyUnicode_READ(kind, data, i) == ' ' && head_at(self, kind, data, n, i + 1))
            return PyLong_FromSsize_t(i);
    }
    return PyLong_FromLong(-1);
}

/* What detect's scan makes of a character below 256: ASCII lowercased, \n \t \r and * as
   spaces, the rest (non-ASCII, never in a head) as 0x80. Filled at import. */
static unsigned char reply_map[256];

/* find(" " + text[:limit].replace("’", "'").lower() with \n \t \r * as spaces, 0) without
   building that string in Python: each character maps to one (str.lower is one to one except
   for U+0130, whose lowercase is two characters: -2 then, for the caller to build the
   string). A non-ASCII character maps to a non-ASCII one (0x80 here, never in a head) except
   U+2019 (the curly apostrophe, folded to ') and U+212A, the Kelvin sign, whose lowercase is
   "k". */
static PyObject *Heads_find_in_reply(Heads *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t n; /* the characters read: min(len(text), limit) */
    PyObject *text = text_and_index("find_in_reply(text, limit)", args, nargs, &n);
    if (text == NULL)
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    unsigned char stack[1024];
    unsigned char *scan = n + 1 <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc((size_t)n + 1);
    if (scan == NULL)
        return PyErr_NoMemory();
    Py_ssize_t found;
    scan[0] = ' ';
    if (kind == PyUnicode_1BYTE_KIND) {
        const unsigned char *p = data;
        for (Py_ssize_t j = 0; j < n; j++)
            scan[j + 1] = reply_map[p[j]];
    } else {
        for (Py_ssize_t j = 0; j < n; j++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, j);
            if (c < 256)
                scan[j + 1] = reply_map[c];
            else if (c == 0x2019)
                scan[j + 1] = '\'';
            else if (c == 0x212A)
                scan[j + 1] = 'k';
            else if (c == 0x130) {
                found = -2;
                goto done;
            } else
                scan[j + 1] = 0x80;
        }
    }
    found = first_head_bytes(self, scan, n + 1, 0);
done:
    if (scan != stack)
        PyMem_Free(scan);
    return PyLong_FromSsize_t(found);
}

static PyMethodDef Heads_methods[] = {
    {"find", (PyCFunction)(void (*)(void))Heads_find, METH_FASTCALL,
     "find(text, start) -> int: the first i >= start where a space is followed by a head, or -1."},
    {"find_in_reply", (PyCFunction)(void (*)(void))Heads_find_in_reply, METH_FASTCALL,
     "find_in_reply(text, limit) -> int: find() on the refusal scan of text[:limit], or -2 when\n"
     "only Python's str.lower can build that scan."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HeadsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "llmpulse._speedups.Heads",
    .tp_basicsize = sizeof(Heads),
    .tp_dealloc = (destructor)Heads_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Heads(heads): finds a space followed by one of the literal ASCII heads.",
    .tp_methods = Heads_methods,
    .tp_new = Heads_new,
};

static inline int is_token_char(Py_UCS4 c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

#define MIN_KEY_RUN 15 /* _redact._MIN_KEY_RUN */

/* Character classes for characters below 256 (the rest are none of them): filled at import. */
#define C_TOKEN 1
#define C_DIGIT 2
#define C_AT 4
static unsigned char mask_class[256];
/* Each character's class in the number shape, 2 bits: a digit, a separator (" .()/" read as a
   space, and "-": the hints accept either), "+", anything else (non-ASCII included). */
enum { N_OTHER = 0, N_DIGIT = 1, N_SEP = 2, N_PLUS = 3 };
static unsigned char number_class[256];

#define PACK2(a, b) (((a) << 2) | (b))
#define PACK5(a, b, c, d, e) ((PACK2(PACK2(PACK2(a, b), c), d) << 2) | (e))
#define PACK8(a, b, c, d, e, f, g, h) ((PACK5(a, b, c, d, e) << 6) | ((f) << 4) | ((g) << 2) | (h))
/* The hints, as the classes of the characters ending at the current one (latest lowest). */
#define HINT_SEP3 PACK5(N_DIGIT, N_SEP, N_DIGIT, N_DIGIT, N_DIGIT) /* 0[ -]000 */
#define HINT_PAIRS PACK8(N_DIGIT, N_DIGIT, N_SEP, N_DIGIT, N_DIGIT, N_SEP, N_DIGIT, N_DIGIT) /* 00[ -]00[ -]00 */
#define HINT_PLUS PACK2(N_PLUS, N_DIGIT) /* +0 */
/* "earer" and "EARER" as the last five bytes read, oldest highest. */
#define BEARER_LOWER 0x6561726572ULL
#define BEARER_UPPER 0x4541524552ULL

/* Pass 1: a run of MIN_KEY_RUN token characters (1), else the classes seen (in *seen). */
#define KEY_RUN_PASS(READ)                                                                         \
    do {                                                                                           \
        unsigned run = 0;                                                                          \
        for (Py_ssize_t i = 0; i < n; i++) {                                                       \
            Py_UCS4 c = READ(i);                                                                   \
            unsigned f = mask_class[c < 256 ? c : 0];                                              \
            run = (f & C_TOKEN) ? run + 1 : 0;                                                     \
            seen |= f;                                                                             \
            if (run >= MIN_KEY_RUN)                                                                \
                return 1;                                                                          \
        }                                                                                          \
    } while (0)

/* Pass 2 (after a digit): rolling windows of the last characters' number classes and bytes
   find a hint or the Bearer word where it ends. */
#define HINT_PASS(READ)                                                                            \
    do {                                                                                           \
        unsigned digits = 0, found = 0, window = 0;                                                \
        uint64_t bytes = 0;                                                                        \
        for (Py_ssize_t i = 0; i < n; i++) {                                                       \
            Py_UCS4 c = READ(i);                                                                   \
            unsigned b = c < 256 ? (unsigned)c : 0;                                                \
            unsigned k = number_class[b];                                                          \
            digits = k == N_DIGIT ? digits + 1 : 0;                                                \
            window = ((window << 2) | k) & 0xFFFF;                                                 \
            bytes = ((bytes << 8) | b) & 0xFFFFFFFFFFULL;                                          \
            found |= ((window & 0x3FF) == HINT_SEP3) | (window == HINT_PAIRS) |                    \
                     ((window & 0xF) == HINT_PLUS) | (digits >= 13) | (bytes == BEARER_LOWER) |    \
                     (bytes == BEARER_UPPER);                                                      \
        }                                                                                          \
        return (int)found;                                                                         \
    } while (0)

#define READ_BYTE(i) ((Py_UCS4)((const unsigned char *)data)[i])
#define READ_ANY(i) PyUnicode_READ(kind, data, i)

static int might_mask_1byte(const void *data, Py_ssize_t n) {
    unsigned seen = 0;
    KEY_RUN_PASS(READ_BYTE);
    if (seen & C_AT)
        return 1;
    if (!(seen & C_DIGIT))
        return 0;
    HINT_PASS(READ_BYTE);
}

static int might_mask_any(int kind, const void *data, Py_ssize_t n) {
    unsigned seen = 0;
    KEY_RUN_PASS(READ_ANY);
    if (seen & C_AT)
        return 1;
    if (!(seen & C_DIGIT))
        return 0;
    HINT_PASS(READ_ANY);
}

static PyObject *might_mask(PyObject *mod, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "might_mask: text must be str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (PyUnicode_READY(text) < 0)
        return NULL;
    int kind = PyUnicode_KIND(text);
    int yes = kind == PyUnicode_1BYTE_KIND
                  ? might_mask_1byte(PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
                  : might_mask_any(kind, PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text));
    return PyBool_FromLong(yes);
}

/* ---- slotted records built without their __init__ -------------------------------------------

   SlotMaker(cls, names)(*values) is cls.__new__(cls) with values[i] stored in slot names[i]:
   what cls(*values) gives for a class whose __init__ only stores its arguments (SpanEvent, the
   CheckContext and Extracted dataclasses), without running it (~0.1 us instead of 0.4-1). Refused
   (TypeError) unless cls is created by object.__new__, names are exactly its __slots__ and each
   is a plain object slot. */

/* The slots' offsets of cls for names (a tuple of str); 0, or -1 with TypeError. */
static int slot_offsets(PyTypeObject *cls, PyObject *names, Py_ssize_t *out) {
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *slots = PyObject_GetAttrString((PyObject *)cls, "__slots__");
    PyObject *mine = slots == NULL ? NULL : PySequence_Tuple(slots);
    PyObject *a = mine == NULL ? NULL : PyFrozenSet_New(mine);
    PyObject *b = a == NULL ? NULL : PyFrozenSet_New(names);
    int ok = b != NULL && PyTuple_GET_SIZE(mine) == n && PyObject_RichCompareBool(a, b, Py_EQ) == 1 &&
             cls->tp_new == PyBaseObject_Type.tp_new;
    Py_XDECREF(slots);
    Py_XDECREF(mine);
    Py_XDECREF(a);
    Py_XDECREF(b);
    PyErr_Clear();
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *d = PyObject_GetAttr((PyObject *)cls, PyTuple_GET_ITEM(names, i));
        ok = d != NULL && Py_TYPE(d) == &PyMemberDescr_Type && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok)
            out[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_XDECREF(d);
        PyErr_Clear();
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s is not a plain slotted record with exactly the slots %R", cls->tp_name, names);
        return -1;
    }
    return 0;
}

/* A new cls instance holding values (new references taken). */
static PyObject *fill_slots(PyTypeObject *cls, const Py_ssize_t *offset, PyObject *const *values, Py_ssize_t n) {
    PyObject *obj = cls->tp_alloc(cls, 0);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(values[i]);
        *(PyObject **)((char *)obj + offset[i]) = values[i];
    }
    return obj;
}

#define MAX_SLOTS 16

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t n;
    Py_ssize_t offset[MAX_SLOTS];
    vectorcallfunc vectorcall;
} SlotMaker;

static PyObject *SlotMaker_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    SlotMaker *self = (SlotMaker *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != self->n || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "%s record takes %zd positional arguments, got %zd", self->cls->tp_name, self->n,
                     nargs);
        return NULL;
    }
    return fill_slots(self->cls, self->offset, args, nargs);
}

static void SlotMaker_dealloc(SlotMaker *self) {
    Py_XDECREF(self->cls);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SlotMaker_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *cls, *names;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "SlotMaker() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!:SlotMaker", &PyType_Type, &cls, &PyTuple_Type, &names))
        return NULL;
    if (PyTuple_GET_SIZE(names) > MAX_SLOTS) {
        PyErr_Format(PyExc_TypeError, "SlotMaker: at most %d slots", MAX_SLOTS);
        return NULL;
    }
    SlotMaker *self = (SlotMaker *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(cls);
    self->cls = (PyTypeObject *)cls;
    self->n = PyTuple_GET_SIZE(names);
    self->vectorcall = SlotMaker_vectorcall;
    if (slot_offsets(self->cls, names, self->offset) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyTypeObject SlotMakerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "llmpulse._speedups.SlotMaker",
    .tp_basicsize = sizeof(SlotMaker),
    .tp_dealloc = (destructor)SlotMaker_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SlotMaker, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_doc = "SlotMaker(cls, names): calling it with len(names) values gives a cls instance holding them.",
    .tp_new = SlotMaker_new,
};

/* ---- 3. Chat Completions extraction ------------------------------------------------------

   _extract.extract_response reads a model response by duck typing. For the most common one, an
   OpenAI Chat Completion (the pydantic ChatCompletion or its model_dump() dict) without tool
   calls, this reads the same fields in C:

     ChatExtractor(kinds, pydantic_kind, extracted_type).extract(obj) -> Extracted | None

   returns what extract_response(obj) returns, or None to leave obj to it: anything that is not
   an exact dict or an instance of a class that kinds (_extract._KINDS, read live) maps to
   pydantic_kind, a pydantic model with extra fields, choices that are not an exact list or
   tuple, a choice, message, usage or details object of another kind, list content, a legacy
   "text" choice, tool calls, a function call, a finish reason that is not an exact str, a usage
   without prompt_tokens and completion_tokens (Anthropic, Responses), and any Python error met
   on the way (the Python path meets it again and does what it does). tests/sdk/test_speedups.py
   compares both on generated responses. */

/* Extracted's fields, all plain slots (a dataclass with slots=True): the record is built by
   writing them at their offsets, as Extracted() and the attribute sets would. */
enum {
    X_RESPONSE_MODEL, X_RESPONSE_ID, X_INPUT_TOKENS, X_OUTPUT_TOKENS, X_CACHE_READ_TOKENS, X_CACHE_WRITE_TOKENS,
    X_REASONING_TOKENS, X_FINISH_REASONS, X_OUTPUT_TEXT, X_TOOL_CALLS, X_REFUSAL, X_REFUSAL_CATEGORY, X_REFUSAL_TEXT,
    X_COUNT
};
static const char *EXTRACTED_FIELDS[X_COUNT] = {
    "response_model", "response_id", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "finish_reasons", "output_text", "tool_calls", "refusal", "refusal_category", "refusal_text",
};

typedef struct {
    PyObject_HEAD
    PyObject *kinds;           /* dict: class -> kind (shared with _extract) */
    PyObject *pydantic;        /* the int _extract._PYDANTIC */
    PyTypeObject *extracted;   /* _extract.Extracted */
    Py_ssize_t offset[X_COUNT]; /* of each field's slot */
} ChatExtractor;

/* Interned at import. */
static PyObject *s_extra, *s_id, *s_model, *s_choices, *s_finish_reason, *s_message, *s_content, *s_refusal,
    *s_tool_calls, *s_function_call, *s_usage, *s_prompt_tokens, *s_completion_tokens, *s_prompt_details,
    *s_cached_tokens, *s_cache_write_tokens, *s_completion_details, *s_reasoning_tokens, *s_content_filter, *s_empty;

static void ChatExtractor_dealloc(ChatExtractor *self) {
    Py_XDECREF(self->kinds);
    Py_XDECREF(self->pydantic);
    Py_XDECREF(self->extracted);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ChatExtractor_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *kinds, *pydantic, *extracted;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "ChatExtractor() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OO!:ChatExtractor", &PyDict_Type, &kinds, &pydantic, &PyType_Type, &extracted))
        return NULL;
    PyTypeObject *xt = (PyTypeObject *)extracted;
    ChatExtractor *self = (ChatExtractor *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(kinds);
    Py_INCREF(pydantic);
    Py_INCREF(extracted);
    self->kinds = kinds;
    self->pydantic = pydantic;
    self->extracted = xt;
    /* Exactly these fields, each a plain slot, nothing run on construction: else TypeError,
       and _extract reads every response in Python. */
    PyObject *names = PyTuple_New(X_COUNT);
    for (int i = 0; names != NULL && i < X_COUNT; i++) {
        PyObject *name = PyUnicode_InternFromString(EXTRACTED_FIELDS[i]);
        if (name == NULL)
            Py_CLEAR(names);
        else
            PyTuple_SET_ITEM(names, i, name);
    }
    if (names == NULL || slot_offsets(xt, names, self->offset) < 0) {
        Py_XDECREF(names);
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(names);
    return (PyObject *)self;
}

/* The dict _extract._fields(obj) reads obj's fields from, as a new reference, or NULL (no
   error set) to leave obj to Python: obj is an exact dict, or a model of a class kinds maps to
   pydantic_kind whose __pydantic_extra__ is None or empty (its fields are then its __dict__). */
static PyObject *fields_of(ChatExtractor *self, PyObject *obj) {
    if (PyDict_CheckExact(obj)) {
        Py_INCREF(obj);
        return obj;
    }
    PyObject *kind = PyDict_GetItemWithError(self->kinds, (PyObject *)Py_TYPE(obj)); /* types hash by id */
    if (kind == NULL || (kind != self->pydantic && PyObject_RichCompareBool(kind, self->pydantic, Py_EQ) != 1)) {
        PyErr_Clear(); /* an unseen class (Python classifies it), another kind */
        return NULL;
    }
    PyObject *extra = PyObject_GetAttr(obj, s_extra);
    if (extra == NULL) {
        PyErr_Clear();
        return NULL;
    }
    int plain = extra == Py_None || (PyDict_CheckExact(extra) && PyDict_GET_SIZE(extra) == 0);
    Py_DECREF(extra);
    if (!plain)
        return NULL;
    PyObject *d = PyObject_GenericGetDict(obj, NULL); /* obj.__dict__ */
    if (d == NULL || !PyDict_CheckExact(d)) {
        Py_XDECREF(d);
        PyErr_Clear();
        return NULL;
    }
    return d;
}

/* fields.get(key) as a new reference (None when absent), NULL (no error set) on an error. */
static PyObject *get(PyObject *fields, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(fields, key);
    if (v == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
        v = Py_None;
    }
    Py_INCREF(v);
    return v;
}

/* _get(obj, key) for what fields_of handles: a new reference, NULL to leave. */
static PyObject *get_of(ChatExtractor *self, PyObject *obj, PyObject *key) {
    PyObject *f = fields_of(self, obj);
    if (f == NULL)
        return NULL;
    PyObject *v = get(f, key);
    Py_DECREF(f);
    return v;
}

/* _extract's "v if type(v) is int and v >= 0 else None", stealing v; NULL stays NULL. */
static PyObject *count(PyObject *v) {
    if (v == NULL || (PyLong_CheckExact(v) && _PyLong_Sign(v) >= 0))
        return v;
    Py_DECREF(v);
    Py_RETURN_NONE;
}

enum { F_ID, F_MODEL, F_TEXT, F_REFUSAL, F_IN, F_OUT, F_CACHED, F_WRITTEN, F_REASONING, F_COUNT };

/* Reads obj into got[] (new references, None when absent) and reasons; 0, or -1 to leave. */
static int read_chat(ChatExtractor *self, PyObject *obj, PyObject **got, PyObject *reasons) {
    int rc = -1;
    PyObject *f = NULL, *choices = NULL, *c = NULL, *reason = NULL, *msg = NULL, *m = NULL, *v = NULL, *u = NULL;
    PyObject *details = NULL;
    if ((f = fields_of(self, obj)) == NULL || (got[F_ID] = get(f, s_id)) == NULL ||
        (got[F_MODEL] = get(f, s_model)) == NULL || (choices = get(f, s_choices)) == NULL)
        goto out;
    if (!PyList_CheckExact(choices) && !PyTuple_CheckExact(choices))
        goto out; /* Responses, Anthropic, embeddings, anything else */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(choices); i++) {
        if ((c = fields_of(self, PySequence_Fast_GET_ITEM(choices, i))) == NULL ||
            (reason = get(c, s_finish_reason)) == NULL)
            goto out;
        if (reason != Py_None && !PyUnicode_CheckExact(reason))
            goto out;
        if (reason != Py_None && PyUnicode_GET_LENGTH(reason) > 0 && PyList_Append(reasons, reason) < 0)
            goto out;
        Py_CLEAR(reason);
        if (i == 0) {
            if ((msg = get(c, s_message)) == NULL || msg == Py_None) /* None: a legacy Completions choice */
                goto out;
            if ((m = fields_of(self, msg)) == NULL || (got[F_TEXT] = get(m, s_content)) == NULL)
                goto out;
            if (got[F_TEXT] != Py_None && !PyUnicode_Check(got[F_TEXT]))
                goto out; /* content parts */
            if ((got[F_REFUSAL] = get(m, s_refusal)) == NULL || (v = get(m, s_tool_calls)) == NULL)
                goto out;
            if (v != Py_None && !((PyList_CheckExact(v) || PyTuple_CheckExact(v)) && PySequence_Fast_GET_SIZE(v) == 0))
                goto out;
            Py_CLEAR(v);
            if ((v = get(m, s_function_call)) == NULL || v != Py_None)
                goto out;
            Py_CLEAR(v);
        }
        Py_CLEAR(c);
    }
    if ((u = get(f, s_usage)) == NULL)
        goto out;
    if (u != Py_None) {
        PyObject *uf = fields_of(self, u);
        Py_SETREF(u, uf);
        if (u == NULL || (got[F_IN] = count(get(u, s_prompt_tokens))) == NULL ||
            (v = get(u, s_completion_tokens)) == NULL)
            goto out;
        if (got[F_IN] == Py_None && v == Py_None)
            goto out; /* Anthropic or Responses usage */
        got[F_OUT] = count(v);
        v = NULL;
        if ((details = get(u, s_prompt_details)) == NULL)
            goto out;
        if (details != Py_None) {
            if ((got[F_CACHED] = count(get_of(self, details, s_cached_tokens))) == NULL ||
                (got[F_WRITTEN] = count(get_of(self, details, s_cache_write_tokens))) == NULL)
                goto out;
        }
        Py_CLEAR(details);
        if ((details = get(u, s_completion_details)) == NULL)
            goto out;
        if (details != Py_None && (got[F_REASONING] = count(get_of(self, details, s_reasoning_tokens))) == NULL)
            goto out;
    }
    rc = 0;
out:
    Py_XDECREF(f);
    Py_XDECREF(choices);
    Py_XDECREF(c);
    Py_XDECREF(reason);
    Py_XDECREF(msg);
    Py_XDECREF(m);
    Py_XDECREF(v);
    Py_XDECREF(u);
    Py_XDECREF(details);
    return rc;
}

static PyObject *nonempty_str(PyObject *v) {
    return v != NULL && PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) > 0 ? v : Py_None;
}

static PyObject *ChatExtractor_extract(ChatExtractor *self, PyObject *obj) {
    PyObject *got[F_COUNT] = {NULL};
    PyObject *ex = NULL, *tool_calls = NULL;
    PyObject *reasons = PyList_New(0);
    if (reasons == NULL)
        return NULL;
    if (read_chat(self, obj, got, reasons) < 0)
        goto done;
    /* _finalize: the reasons are exact strs, so "in" runs no Python code */
    int filtered = PySequence_Contains(reasons, s_content_filter);
    int refused = filtered ? 0 : PySequence_Contains(reasons, s_refusal);
    if (filtered < 0 || refused < 0 || (tool_calls = PyList_New(0)) == NULL)
        goto done;
    PyObject *refusal_text = nonempty_str(got[F_REFUSAL]);
    PyObject *text = got[F_TEXT] != NULL && got[F_TEXT] != Py_None ? got[F_TEXT] : s_empty;
    PyObject *value[X_COUNT] = {
        [X_RESPONSE_MODEL] = nonempty_str(got[F_MODEL]),
        [X_RESPONSE_ID] = nonempty_str(got[F_ID]),
        [X_INPUT_TOKENS] = got[F_IN] ? got[F_IN] : Py_None,
        [X_OUTPUT_TOKENS] = got[F_OUT] ? got[F_OUT] : Py_None,
        [X_CACHE_READ_TOKENS] = got[F_CACHED] ? got[F_CACHED] : Py_None,
        [X_CACHE_WRITE_TOKENS] = got[F_WRITTEN] ? got[F_WRITTEN] : Py_None,
        [X_REASONING_TOKENS] = got[F_REASONING] ? got[F_REASONING] : Py_None,
        [X_FINISH_REASONS] = reasons,
        [X_OUTPUT_TEXT] = text,
        [X_TOOL_CALLS] = tool_calls,
        [X_REFUSAL] = refusal_text != Py_None || filtered || refused ? Py_True : Py_False,
        [X_REFUSAL_CATEGORY] = filtered ? s_content_filter : Py_None,
        [X_REFUSAL_TEXT] = refusal_text,
    };
    ex = fill_slots(self->extracted, self->offset, value, X_COUNT); /* Extracted(*value) */
done:
    if (ex == NULL)
        PyErr_Clear(); /* leave it to Python, which meets the same error and does what it does */
    for (int k = 0; k < F_COUNT; k++)
        Py_XDECREF(got[k]);
    Py_XDECREF(tool_calls);
    Py_DECREF(reasons);
    if (ex == NULL)
        Py_RETURN_NONE;
    return ex;
}

static PyMethodDef ChatExtractor_methods[] = {
    {"extract", (PyCFunction)ChatExtractor_extract, METH_O,
     "extract(obj) -> Extracted | None: extract_response(obj) for a plain Chat Completion, else None."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChatExtractorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "llmpulse._speedups.ChatExtractor",
    .tp_basicsize = sizeof(ChatExtractor),
    .tp_dealloc = (destructor)ChatExtractor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChatExtractor(kinds, pydantic_kind, extracted_type): Chat Completions read in C.",
    .tp_methods = ChatExtractor_methods,
    .tp_new = ChatExtractor_new,
};

static PyMethodDef module_methods[] = {
    {"might_mask", might_mask, METH_O,
     "might_mask(text) -> bool: whether any of default_redact's prefilters lets a pattern run."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, module_methods, NULL, NULL, NULL, NULL};

static int intern_names(void) {
    struct {
        PyObject **var;
        const char *text;
    } names[] = {
        {&s_extra, "__pydantic_extra__"}, {&s_id, "id"}, {&s_model, "model"},
        {&s_choices, "choices"}, {&s_finish_reason, "finish_reason"}, {&s_message, "message"},
        {&s_content, "content"}, {&s_refusal, "refusal"}, {&s_tool_calls, "tool_calls"},
        {&s_function_call, "function_call"}, {&s_usage, "usage"}, {&s_prompt_tokens, "prompt_tokens"},
        {&s_completion_tokens, "completion_tokens"}, {&s_prompt_details, "prompt_tokens_details"},
        {&s_cached_tokens, "cached_tokens"}, {&s_cache_write_tokens, "cache_write_tokens"},
        {&s_completion_details, "completion_tokens_details"}, {&s_reasoning_tokens, "reasoning_tokens"},
        {&s_content_filter, "content_filter"}, {&s_empty, ""},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].var = PyUnicode_InternFromString(names[i].text);
        if (*names[i].var == NULL)
            return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__speedups(void) {
    if (intern_names() < 0)
        return NULL;
    for (int c = 0; c < 256; c++) {
        mask_class[c] = (unsigned char)((c < 128 && is_token_char((Py_UCS4)c) ? C_TOKEN : 0) |
                                        (c >= '0' && c <= '9' ? C_DIGIT : 0) | (c == '@' ? C_AT : 0));
        number_class[c] = (unsigned char)(c >= '0' && c <= '9'                                           ? N_DIGIT
                                          : c == ' ' || c == '.' || c == '(' || c == ')' || c == '/' || c == '-' ? N_SEP
                                          : c == '+'                                                     ? N_PLUS
                                                                                                         : N_OTHER);
        unsigned char m = c >= 128 ? 0x80 : (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : (unsigned char)c;
        reply_map[c] = (m == '\n' || m == '\t' || m == '\r' || m == '*') ? ' ' : m;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyTypeObject *types[] = {&HeadsType, &ChatExtractorType, &SlotMakerType};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (PyType_Ready(types[i]) < 0 || PyModule_AddType(m, types[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
