/* pattern.c - topic patterns: a regular-expression matcher whose time has a bound.
 *
 * DESIGN: shoald matches every pattern member's pattern against its topics on its event
 * loop, so a pattern must not be able to stall it. glibc's regcomp()/regexec() can: nested
 * counted repetition such as ((.{0,12}){0,12}){0,12} took seconds to compile and to match
 * one name, and held every client of the daemon that long. This matcher builds Glushkov's
 * automaton instead: one position for each character or class the pattern holds (counted
 * again for each copy a repetition {m,n} makes), at most PATTERN_POSITIONS of them, and
 * runs it on a set of positions held as bits. A byte of the name costs at most one OR of a
 * follow set per position, so a name of 249 bytes takes microseconds whatever the pattern.
 *
 * The syntax is what Kafka users write, since Kafka's subscribe(Pattern) takes a Java
 * regular expression: the part of Java's syntax that is also POSIX's extended one, plus
 * Java's \d \w \s (and \D \W \S) and (?:...). What would mean something else in either
 * (back-references, (?...) other than (?:, nested or intersected classes, possessive
 * quantifiers, other escaped letters) is refused rather than read one way. Matches are of
 * the whole name, as Java's matches(): "^" and "$" are allowed at the ends and change
 * nothing. A lazy quantifier (*?) matches the same names as a greedy one.
 *
 * Parsing builds the automaton directly: each parse returns a fragment (its first and last
 * positions, and whether it matches the empty string) and joins fragments with follow
 * edges. A repetition of an atom parses the atom's text again for each copy, so that each
 * copy has positions of its own; the parse work is bounded too (PATTERN_WORK). */
#include "pattern.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "shoal.h"
#include "util.h"

#define PATTERN_POSITIONS 256
#define PATTERN_WORDS     (PATTERN_POSITIONS / 64)
#define PATTERN_DEPTH     32    /* groups inside groups */
#define PATTERN_REPEAT    1000  /* the largest bound of a {m,n} */
#define PATTERN_WORK      20000 /* atoms parsed, copies included */

typedef struct pset {
    uint64_t w[PATTERN_WORDS];
} pset_t;

typedef struct bytes { /* a class: which bytes it takes */
    uint64_t w[4];
} bytes_t;

struct shoal_pattern {
    pset_t first, last;
    bool nullable;
    pset_t follow[PATTERN_POSITIONS];
    pset_t by_byte[256]; /* the positions whose class takes this byte */
};

struct frag {
    pset_t first, last;
    bool nullable;
};

struct parser {
    const char *src;
    size_t at, len;
    unsigned positions, work;
    int depth;
    shoal_pattern_t *p;
};

/* ------------------------------------------------------------------ sets */

static void pset_or(pset_t *a, const pset_t *b)
{
    for (int i = 0; i < PATTERN_WORDS; i++)
        a->w[i] |= b->w[i];
}

static bool pset_any(const pset_t *a)
{
    uint64_t any = 0;
    for (int i = 0; i < PATTERN_WORDS; i++)
        any |= a->w[i];
    return any != 0;
}

static void bytes_add(bytes_t *b, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi; c++)
        b->w[c / 64] |= 1ull << (c % 64);
}

static void bytes_or(bytes_t *a, const bytes_t *b)
{
    for (int i = 0; i < 4; i++)
        a->w[i] |= b->w[i];
}

static void bytes_invert(bytes_t *b)
{
    for (int i = 0; i < 4; i++)
        b->w[i] = ~b->w[i];
    b->w[0] &= ~1ull; /* never NUL: the end of a name */
}

/* ------------------------------------------------------------------ fragments */

static const struct frag empty_frag = {.nullable = true};

/* Every position in a's last set may be followed by every position in the set to. */
static void link(struct parser *ps, const pset_t *last, const pset_t *to)
{
    for (int i = 0; i < PATTERN_WORDS; i++)
        for (uint64_t w = last->w[i]; w; w &= w - 1)
            pset_or(&ps->p->follow[i * 64 + __builtin_ctzll(w)], to);
}

/* a, then b. */
static void frag_cat(struct parser *ps, struct frag *a, const struct frag *b)
{
    struct frag r = {.nullable = a->nullable && b->nullable};

    link(ps, &a->last, &b->first);
    r.first = a->first;
    if (a->nullable)
        pset_or(&r.first, &b->first);
    r.last = b->last;
    if (b->nullable)
        pset_or(&r.last, &a->last);
    *a = r;
}

static void frag_alt(struct frag *a, const struct frag *b)
{
    pset_or(&a->first, &b->first);
    pset_or(&a->last, &b->last);
    a->nullable |= b->nullable;
}

/* ------------------------------------------------------------------ parsing */

static int bad(const struct parser *ps, const char *what)
{
    return SHOAL_ERR(SHOAL_EINVAL, "topic pattern '%.200s': %s (at offset %zu)", ps->src, what,
                     ps->at);
}

static int peek(const struct parser *ps)
{
    return ps->at < ps->len ? (unsigned char)ps->src[ps->at] : -1;
}

static int new_position(struct parser *ps, const bytes_t *cls, struct frag *f)
{
    unsigned pos = ps->positions;

    if (pos == PATTERN_POSITIONS)
        return bad(ps, "more than 256 characters and classes, counting each copy a "
                       "repetition makes: simplify it");
    ps->positions++;
    for (unsigned c = 1; c < 256; c++)
        if (cls->w[c / 64] >> (c % 64) & 1)
            ps->p->by_byte[c].w[pos / 64] |= 1ull << (pos % 64);
    memset(f, 0, sizeof(*f));
    f->first.w[pos / 64] = f->last.w[pos / 64] = 1ull << (pos % 64);
    return 0;
}

/* After a backslash: a class (\d \w \s and their complements) or an escaped non-letter. */
static int parse_escape(struct parser *ps, bytes_t *cls)
{
    int e = peek(ps);
    bool negate = e == 'D' || e == 'W' || e == 'S';

    memset(cls, 0, sizeof(*cls));
    if (e < 0)
        return bad(ps, "a '\\' at the end");
    if (e >= '0' && e <= '9')
        return bad(ps, "back-references are not supported");
    if (e == 'd' || e == 'D') {
        bytes_add(cls, '0', '9');
    } else if (e == 'w' || e == 'W') {
        bytes_add(cls, 'a', 'z');
        bytes_add(cls, 'A', 'Z');
        bytes_add(cls, '0', '9');
        bytes_add(cls, '_', '_');
    } else if (e == 's' || e == 'S') {
        bytes_add(cls, '\t', '\r');
        bytes_add(cls, ' ', ' ');
    } else if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
        return bad(ps, "of the escapes of a letter only \\d \\w \\s \\D \\W \\S are supported");
    } else {
        bytes_add(cls, (unsigned)e, (unsigned)e);
    }
    if (negate)
        bytes_invert(cls);
    ps->at++;
    return 0;
}

/* One member of a bracket expression: a byte (a plain one, or an escaped non-letter). */
static int bracket_byte(struct parser *ps, int *out)
{
    bytes_t one;
    int c = peek(ps), rc;

    if (c != '\\') {
        ps->at++;
        *out = c;
        return 0;
    }
    ps->at++;
    c = peek(ps);
    if (c < 0)
        return bad(ps, "a '[' without its ']'");
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return bad(ps, "inside [...] only \\d \\w \\s \\D \\W \\S and escaped "
                       "non-letters are supported, and not at a range's end");
    if ((rc = parse_escape(ps, &one)) < 0)
        return rc;
    *out = c;
    return 0;
}

/* After '[': the class up to its ']'. */
static int parse_bracket(struct parser *ps, bytes_t *cls)
{
    bool negate = peek(ps) == '^', first = true;
    int rc;

    memset(cls, 0, sizeof(*cls));
    ps->at += negate;
    for (;; first = false) {
        int c = peek(ps), lo, hi;
        if (c < 0)
            return bad(ps, "a '[' without its ']'");
        if (c == ']' && !first)
            break;
        if (c == '[')
            return bad(ps, "a '[' inside [...] (a nested class or [:name:]): write \\[ for "
                           "the character, \\d or [0-9] for a class");
        if (c == '&' && ps->at + 1 < ps->len && ps->src[ps->at + 1] == '&')
            return bad(ps, "'&&' inside [...] (an intersection) is not supported");
        if (c == '\\' && ps->at + 1 < ps->len && strchr("dDwWsS", ps->src[ps->at + 1])) {
            bytes_t sub;
            ps->at++;
            if ((rc = parse_escape(ps, &sub)) < 0)
                return rc;
            bytes_or(cls, &sub);
            continue;
        }
        if ((rc = bracket_byte(ps, &lo)) < 0)
            return rc;
        hi = lo;
        if (peek(ps) == '-' && ps->at + 1 < ps->len && ps->src[ps->at + 1] != ']') {
            ps->at++;
            if ((rc = bracket_byte(ps, &hi)) < 0)
                return rc;
            if (hi < lo)
                return bad(ps, "a range's end comes before its start");
        }
        bytes_add(cls, (unsigned)lo, (unsigned)hi);
    }
    ps->at++; /* the ']' */
    if (negate)
        bytes_invert(cls);
    return 0;
}

static int parse_alt(struct parser *ps, struct frag *f);

/* After '(': a group up to its ')'. */
static int parse_group(struct parser *ps, struct frag *f)
{
    int rc;

    if (peek(ps) == '?') {
        if (ps->at + 1 >= ps->len || ps->src[ps->at + 1] != ':')
            return bad(ps, "of the (?...) groups only (?:...) is supported");
        ps->at += 2;
    }
    if (++ps->depth > PATTERN_DEPTH)
        return bad(ps, "groups nest more than 32 deep");
    if ((rc = parse_alt(ps, f)) < 0)
        return rc;
    if (peek(ps) != ')')
        return bad(ps, "a '(' without its ')'");
    ps->at++;
    ps->depth--;
    return 0;
}

static int parse_atom(struct parser *ps, struct frag *f)
{
    int c = peek(ps), rc;
    bytes_t cls;

    if (++ps->work > PATTERN_WORK)
        return bad(ps, "too much repetition to expand: simplify it");
    ps->at++;
    switch (c) {
    case '(':
        return parse_group(ps, f);
    case '[':
        rc = parse_bracket(ps, &cls);
        break;
    case '.':
        memset(&cls, 0, sizeof(cls));
        bytes_invert(&cls);
        rc = 0;
        break;
    case '\\':
        rc = parse_escape(ps, &cls);
        break;
    case '^':
    case '$':
        if ((c == '^' && ps->at != 1) || (c == '$' && ps->at != ps->len))
            return ps->at--, bad(ps, "'^' and '$' are allowed only at the start and the end");
        *f = empty_frag;
        return 0;
    case '*':
    case '+':
    case '?':
    case '{':
        return ps->at--, bad(ps, "a repetition of nothing (write \\ before the character)");
    default:
        memset(&cls, 0, sizeof(cls));
        bytes_add(&cls, (unsigned)c, (unsigned)c);
        rc = 0;
    }
    return rc < 0 ? rc : new_position(ps, &cls, f);
}

static int parse_count(struct parser *ps, int *out)
{
    int n = 0, c;

    if ((c = peek(ps)) < '0' || c > '9')
        return bad(ps, "a repetition {m,n} needs numbers");
    for (; (c = peek(ps)) >= '0' && c <= '9'; ps->at++)
        if ((n = n * 10 + (c - '0')) > PATTERN_REPEAT)
            return bad(ps, "a repetition's bound is above 1000");
    *out = n;
    return 0;
}

/* A quantifier, if one comes: *min and *max (-1: no bound), else 1 and 1. */
static int parse_quantifier(struct parser *ps, int *min, int *max)
{
    int c = peek(ps), rc;

    *min = *max = 1;
    if (c == '*' || c == '+' || c == '?') {
        ps->at++;
        *min = c == '+';
        *max = c == '?' ? 1 : -1;
    } else if (c == '{') {
        ps->at++;
        if ((rc = parse_count(ps, min)) < 0)
            return rc;
        *max = *min;
        if (peek(ps) == ',') {
            ps->at++;
            *max = -1;
            if (peek(ps) != '}' && (rc = parse_count(ps, max)) < 0)
                return rc;
        }
        if (peek(ps) != '}')
            return bad(ps, "a repetition {m,n} without its '}'");
        ps->at++;
        if (*max >= 0 && *max < *min)
            return bad(ps, "a repetition {m,n} with n below m");
    } else {
        return 0;
    }
    if (peek(ps) == '?') /* lazy: the same names match */
        ps->at++;
    c = peek(ps);
    if (c == '+')
        return bad(ps, "possessive quantifiers are not supported");
    if (c == '*' || c == '?' || c == '{')
        return bad(ps, "a repetition of a repetition: put the first in a group");
    return 0;
}

/* An atom and its quantifier. x{m,n} is m copies of x, then n - m optional ones; x{m,} is
 * m copies, the last looping on itself (x* when m is 0: one optional copy that loops). Each
 * copy after the first parses the atom's text again. */
static int parse_repeat(struct parser *ps, struct frag *f)
{
    size_t start = ps->at, end;
    struct frag copy;
    int min, max, copies, rc;

    if ((rc = parse_atom(ps, &copy)) < 0 || (rc = parse_quantifier(ps, &min, &max)) < 0)
        return rc;
    end = ps->at;
    copies = max >= 0 ? max : min > 0 ? min : 1;
    *f = empty_frag;
    for (int i = 0; i < copies; i++) {
        if (i > 0) {
            ps->at = start;
            if ((rc = parse_atom(ps, &copy)) < 0)
                return rc;
        }
        if (max < 0 && i == copies - 1)
            link(ps, &copy.last, &copy.first);
        copy.nullable |= i >= min;
        frag_cat(ps, f, &copy);
    }
    ps->at = end;
    return 0;
}

static int parse_cat(struct parser *ps, struct frag *f)
{
    int rc;

    *f = empty_frag;
    while (peek(ps) >= 0 && peek(ps) != '|' && peek(ps) != ')') {
        struct frag next;
        if ((rc = parse_repeat(ps, &next)) < 0)
            return rc;
        frag_cat(ps, f, &next);
    }
    return 0;
}

static int parse_alt(struct parser *ps, struct frag *f)
{
    int rc = parse_cat(ps, f);

    while (rc == 0 && peek(ps) == '|') {
        struct frag other;
        ps->at++;
        if ((rc = parse_cat(ps, &other)) == 0)
            frag_alt(f, &other);
    }
    return rc;
}

/* ------------------------------------------------------------------ the interface */

int shoal__pattern_compile(const char *pattern, shoal_pattern_t **out)
{
    struct parser ps = {.src = pattern, .len = pattern ? strlen(pattern) : 0};
    struct frag all;
    int rc;

    if (ps.len == 0 || ps.len > SHOAL_TOPIC_PATTERN_MAX)
        return SHOAL_ERR(SHOAL_EINVAL, "a topic pattern has 1 to %d bytes, not %zu",
                         SHOAL_TOPIC_PATTERN_MAX, ps.len);
    if (shoal__has_control(pattern))
        return SHOAL_ERR(SHOAL_EINVAL, "the topic pattern has a control character");
    if (!(ps.p = shoal__calloc(1, sizeof(*ps.p))))
        return -ENOMEM;
    rc = parse_alt(&ps, &all);
    if (rc == 0 && ps.at < ps.len) /* parse_alt stops only at the end or a ')' */
        rc = bad(&ps, "a ')' without its '('");
    if (rc < 0) {
        shoal__free(ps.p);
        return rc;
    }
    ps.p->first = all.first;
    ps.p->last = all.last;
    ps.p->nullable = all.nullable;
    *out = ps.p;
    return 0;
}

bool shoal__pattern_match(const shoal_pattern_t *p, const char *name)
{
    const unsigned char *s = (const unsigned char *)name;
    pset_t on;

    if (!*s)
        return p->nullable;
    on = p->first;
    for (;; s++) {
        pset_t next = {{0}};
        for (int i = 0; i < PATTERN_WORDS; i++)
            on.w[i] &= p->by_byte[*s].w[i];
        if (!pset_any(&on))
            return false;
        if (!s[1])
            break;
        for (int i = 0; i < PATTERN_WORDS; i++)
            for (uint64_t w = on.w[i]; w; w &= w - 1)
                pset_or(&next, &p->follow[i * 64 + __builtin_ctzll(w)]);
        on = next;
    }
    for (int i = 0; i < PATTERN_WORDS; i++)
        on.w[i] &= p->last.w[i];
    return pset_any(&on);
}

void shoal__pattern_free(shoal_pattern_t *p)
{
    shoal__free(p);
}
