#include "tmpl.h"

#include "cron.h"
#include "errbuf.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

typedef struct tmpl_buf {
    char *data;
    size_t len, cap;
} tmpl_buf;

static void tmpl_buf_add(tmpl_buf *b, const char *s, size_t n)
{
    if (b->cap - b->len <= n) { /* keep room for the final NUL */
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len <= n)
            cap *= 2;
        b->data = mem_realloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void tmpl_buf_addc(tmpl_buf *b, char c)
{
    tmpl_buf_add(b, &c, 1);
}

static int tmpl_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ASCII classes, independent of the locale. */
static int tmpl_alpha(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int tmpl_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int tmpl_namec(int c)
{
    return tmpl_alpha(c) || tmpl_digit(c) || c == '_';
}

/* A value dash reads as one plain word wherever a word may stand. */
static int tmpl_plain(const char *v)
{
    if (!*v)
        return 0;
    for (const char *p = v; *p; p++)
        if (!tmpl_namec((unsigned char)*p) && !strchr("./:+=,@%-", *p))
            return 0;
    return 1;
}

static int tmpl_digits(const char *v)
{
    if (!*v)
        return 0;
    for (const char *p = v; *p; p++)
        if (!tmpl_digit((unsigned char)*p))
            return 0;
    return 1;
}

/* The last entry named name[0..n), or NULL. */
static const tmpl_var *tmpl_lookup(const tmpl_var *vars, size_t nvars, const char *name, size_t n)
{
    for (size_t i = nvars; i-- > 0;) {
        const char *v = vars[i].name;
        if (v && strncmp(v, name, n) == 0 && v[n] == '\0')
            return &vars[i];
    }
    return NULL;
}

/* ---- the template as a sequence of elements -------------------------------------------
 * Parsing turns the template into elements: the bytes of command text (the
 * template's literal text, and the values of `| raw` placeholders, which are
 * command text by the author's word), and one element per placeholder whose
 * value is to be quoted. The lexer below reads only the bytes. */

#define TMPL_PH 256 /* an element >= TMPL_PH is placeholder number (el - TMPL_PH) */

typedef struct tmpl_ph {
    const tmpl_var *var;
    size_t off; /* of its "{{" in the template */
} tmpl_ph;

typedef struct tmpl_seq {
    int *el;
    size_t *off; /* template offset of each element */
    size_t n, cap;
    tmpl_ph *ph;
    size_t nph, capph;
} tmpl_seq;

static void tmpl_seq_add(tmpl_seq *s, int el, size_t off)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->el = mem_realloc(s->el, s->cap * sizeof *s->el);
        s->off = mem_realloc(s->off, s->cap * sizeof *s->off);
    }
    s->el[s->n] = el;
    s->off[s->n++] = off;
}

static void tmpl_seq_add_ph(tmpl_seq *s, const tmpl_var *v, size_t off)
{
    if (s->nph == s->capph) {
        s->capph = s->capph ? s->capph * 2 : 16;
        s->ph = mem_realloc(s->ph, s->capph * sizeof *s->ph);
    }
    s->ph[s->nph] = (tmpl_ph){v, off};
    tmpl_seq_add(s, TMPL_PH + (int)s->nph++, off);
}

static void tmpl_seq_free(tmpl_seq *s)
{
    mem_free(s->el);
    mem_free(s->off);
    mem_free(s->ph);
}

static void tmpl_trim(const char **b, const char **e)
{
    while (*b < *e && tmpl_space(**b))
        (*b)++;
    while (*e > *b && tmpl_space((*e)[-1]))
        (*e)--;
}

/* One `{{ NAME [| FILTER] }}` between open and close (the "}}"). */
static int tmpl_expr(const char *src, const char *open, const char *close, const tmpl_var *vars,
                     size_t nvars, tmpl_seq *s, char *errbuf, size_t errlen)
{
    size_t at = (size_t)(open - src);
    const char *name = open + 2, *end = close;
    const char *bar = memchr(name, '|', (size_t)(close - name));
    const char *fil = NULL, *fend = close;
    if (bar) {
        end = bar;
        fil = bar + 1;
        tmpl_trim(&fil, &fend);
    }
    tmpl_trim(&name, &end);
    if (name == end) {
        errbuf_printf(errbuf, errlen, "empty {{ }} at offset %zu", at);
        return -1;
    }
    int raw = 0;
    if (bar) {
        if (fend - fil != 3 || memcmp(fil, "raw", 3) != 0) {
            errbuf_printf(errbuf, errlen,
                          "unknown filter \"%.*s\" at offset %zu (the only filter is raw)",
                          (int)(fend - fil > 64 ? 64 : fend - fil), fil, at);
            return -1;
        }
        raw = 1;
    }
    const tmpl_var *v = tmpl_lookup(vars, nvars, name, (size_t)(end - name));
    if (!v) {
        errbuf_printf(errbuf, errlen, "unknown template variable %.*s", (int)(end - name), name);
        return -1;
    }
    if (raw && v->origin != TMPL_FROM_DAG) {
        errbuf_printf(
            errbuf, errlen,
            "%s at offset %zu comes from the run's conf: | raw is only for values the DAG "
            "defines",
            v->name, at);
        return -1;
    }
    if (!raw) {
        tmpl_seq_add_ph(s, v, at);
        return 0;
    }
    for (const char *p = v->value ? v->value : ""; *p; p++)
        tmpl_seq_add(s, (unsigned char)*p, at);
    return 0;
}

static int tmpl_parse(const char *src, const tmpl_var *vars, size_t nvars, tmpl_seq *s,
                      char *errbuf, size_t errlen)
{
    const char *p = src;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *stop = open ? open : p + strlen(p);
        for (; p < stop; p++)
            tmpl_seq_add(s, (unsigned char)*p, (size_t)(p - src));
        if (!open)
            return 0;
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            errbuf_printf(errbuf, errlen, "unclosed {{ at offset %zu", (size_t)(open - src));
            return -1;
        }
        if (tmpl_expr(src, open, close, vars, nvars, s, errbuf, errlen))
            return -1;
        p = close + 2;
    }
}

/* ---- the shell lexer -------------------------------------------------------------------
 * Reads the command text the way dash does, keeping a stack of the contexts
 * it is in, and decides at each placeholder how its value must be written.
 * It never looks at a value to decide where it is: a quoted value is one
 * complete word part, and a plain value is made of characters that are word
 * characters everywhere (with the exceptions lex_force_quote handles). Where
 * it cannot be sure it says why (lex_unsure) and stops: every placeholder after
 * that point is an error. */

enum { F_CMD, F_SQ, F_DQ, F_COMMENT, F_ARITH, F_PARAM, F_HEREDOC };
enum { SUB_ROOT, SUB_PAREN, SUB_BQ }; /* F_CMD: the top level, $( ), or `...` */

#define LEX_FRAMES 32
#define LEX_HEREDOCS 8
#define LEX_DELIM 128
#define LEX_WORD 12

/* What lex_peek returns besides bytes and placeholders. */
#define R_EOF (-1)
#define R_BQ_END (-2) /* the backquote that ends the `...` we are in */
#define R_UNSURE (-3) /* \` or \" inside backquotes */
#define R_BS_PH (-4)  /* a backslash right before a placeholder, inside backquotes */

typedef struct lex_frame {
    unsigned char kind, sub;
    int depth;   /* F_CMD in $( ) and F_ARITH: open parentheses */
    size_t open; /* template offset of its opening */
    /* F_CMD: the current word */
    unsigned char start, name_ok, digits_ok; /* at its start; all name chars; all digits */
    unsigned char no_assign, no_io;          /* known not to be NAME=..., nor 2>... */
    int wlen;                                /* its letters in word[]; -1: not only letters */
    char word[LEX_WORD];
    /* F_HEREDOC */
    int hd;
    unsigned char line_start; /* at the beginning of a body line */
    int line_ph;              /* the last value on this line, -1: none */
    size_t line_out;          /* output offset of this line */
} lex_frame;

typedef struct lex_heredoc {
    char delim[LEX_DELIM];
    size_t len;
    unsigned char quoted, strip;
} lex_heredoc;

typedef struct lex {
    const tmpl_seq *s;
    size_t pos;
    lex_frame st[LEX_FRAMES]; /* st[0] is the top level */
    int top;
    lex_heredoc hd[LEX_HEREDOCS]; /* here-documents of the current line */
    int nhd, hd_next;             /* how many; the next whose body comes */
    int bq, hd_frame;             /* the frame of `...`, of the here-document body; -1 none */
    size_t name_end, tilde_end;   /* pos just after `$NAME`, after an unquoted `~` */
    const char *unsure;           /* why the lexer stopped being sure, NULL while it is */
    size_t unsure_off;
    size_t nsubst;
    int last_ph, failed;
    tmpl_buf out;
    char *errbuf;
    size_t errlen;
} lex;

static size_t lex_off(const lex *L, size_t pos)
{
    const tmpl_seq *s = L->s;
    return pos < s->n ? s->off[pos] : s->n ? s->off[s->n - 1] + 1 : 0;
}

static void lex_unsure(lex *L, const char *why)
{
    if (!L->unsure) {
        L->unsure = why;
        L->unsure_off = lex_off(L, L->pos);
    }
}

static void lex_fail_ph(lex *L, int i, const char *why)
{
    const tmpl_ph *p = &L->s->ph[i];
    errbuf_printf(L->errbuf, L->errlen, "cannot substitute %s at offset %zu: %s", p->var->name,
                  p->off, why);
    L->failed = 1;
}

/* Does dash remove backslash-newline pairs here? Everywhere but in '...', a
 * comment and here-document bodies (handled there). Inside `...` always: the
 * backquote's own scan removes them before anything else reads the text. */
static int lex_eats_bnl(const lex *L)
{
    int k = L->st[L->top].kind;
    return L->bq >= 0 || k == F_CMD || k == F_DQ || k == F_ARITH || k == F_PARAM;
}

/* The element at pos as the current context reads it; *next is just after
 * it. bnl: skip backslash-newline pairs first (not for the character a
 * backslash escapes). Inside `...` this also undoes the backquote's escapes:
 * \\ and \$ read as \ and $. */
static int lex_peek(const lex *L, size_t pos, size_t *next, int bnl)
{
    const tmpl_seq *s = L->s;
    int in_bq = L->bq >= 0;
    bnl = in_bq || (bnl && lex_eats_bnl(L));
    for (;;) {
        if (pos >= s->n) {
            *next = pos;
            return R_EOF;
        }
        int c = s->el[pos], d = pos + 1 < s->n ? s->el[pos + 1] : R_EOF;
        *next = pos + 1;
        if (c == '\\' && d == '\n' && bnl) {
            pos += 2;
            continue;
        }
        if (!in_bq || c >= TMPL_PH)
            return c;
        if (c == '`')
            return R_BQ_END;
        if (c != '\\')
            return c;
        if (d >= TMPL_PH)
            return R_BS_PH;
        if (d == '\\' || d == '$') {
            *next = pos + 2;
            return d;
        }
        if (d == '`' || d == '"') {
            *next = pos + 2;
            return R_UNSURE;
        }
        return c;
    }
}

/* Copies command text [L->pos, next) to the output. */
static void lex_take(lex *L, size_t next)
{
    for (; L->pos < next; L->pos++)
        tmpl_buf_addc(&L->out, (char)L->s->el[L->pos]);
}

/* ---- words ---- */

static void lex_word_start(lex_frame *f)
{
    f->start = f->name_ok = f->digits_ok = 1;
    f->no_assign = f->no_io = 0;
    f->wlen = 0;
}

/* A quote or an expansion in the middle of the word. */
static void lex_word_nested(lex_frame *f)
{
    f->start = f->name_ok = f->digits_ok = 0;
    f->wlen = -1;
}

static void lex_word_char(lex_frame *f, int c)
{
    f->start = 0;
    if (!tmpl_namec(c))
        f->name_ok = 0;
    if (!tmpl_digit(c))
        f->digits_ok = 0;
    if (f->wlen >= 0 && tmpl_alpha(c) && f->wlen < LEX_WORD)
        f->word[f->wlen++] = (char)c;
    else
        f->wlen = -1;
}

/* `case` inside $( ) makes `)` a pattern's end, not the substitution's. */
static void lex_word_end(lex *L, lex_frame *f)
{
    if (f->sub == SUB_PAREN && f->wlen == 4 && !memcmp(f->word, "case", 4))
        lex_unsure(L, "case inside $( )");
    lex_word_start(f);
}

/* ---- the stack ---- */

static lex_frame *lex_push(lex *L, int kind, int sub)
{
    if (L->top + 1 >= LEX_FRAMES) {
        lex_unsure(L, "nesting deeper than 32 levels");
        return NULL;
    }
    lex_frame *parent = &L->st[L->top];
    if (parent->kind == F_CMD && kind != F_COMMENT && kind != F_HEREDOC)
        lex_word_nested(parent);
    lex_frame *f = &L->st[++L->top];
    memset(f, 0, sizeof *f);
    f->kind = (unsigned char)kind;
    f->sub = (unsigned char)sub;
    f->open = lex_off(L, L->pos);
    f->line_ph = -1;
    if (kind == F_CMD)
        lex_word_start(f);
    if (sub == SUB_BQ)
        L->bq = L->top;
    if (kind == F_HEREDOC)
        L->hd_frame = L->top;
    return f;
}

static void lex_pop(lex *L)
{
    lex_frame *f = &L->st[L->top];
    if (f->sub == SUB_BQ)
        L->bq = -1;
    if (f->kind == F_HEREDOC)
        L->hd_frame = -1;
    L->top--;
}

/* A here-document operator was read on this line; its body has not begun. */
static int lex_pending(const lex *L)
{
    return L->hd_frame < 0 && L->nhd > L->hd_next;
}

static int lex_in(const lex *L, int kind)
{
    for (int k = 1; k <= L->top; k++)
        if (L->st[k].kind == kind)
            return 1;
    return 0;
}

/* ---- here-documents ---- */

static void lex_dollar(lex *L, size_t next);

static void lex_heredoc_begin(lex *L)
{
    lex_frame *f = lex_push(L, F_HEREDOC, 0);
    if (!f)
        return;
    f->hd = L->hd_next++;
    f->line_start = 1;
}

static void lex_heredoc_done(lex *L)
{
    lex_pop(L);
    if (L->hd_next < L->nhd) {
        lex_heredoc_begin(L);
        return;
    }
    L->nhd = L->hd_next = 0;
    lex_word_start(&L->st[0]);
}

/* At the start of a body line: a line of only command text that equals the
 * delimiter ends the body. A line with values is checked once rendered. */
static void lex_heredoc_line(lex *L, lex_frame *f)
{
    const tmpl_seq *s = L->s;
    const lex_heredoc *h = &L->hd[f->hd];
    size_t e = L->pos;
    int has_ph = 0;
    for (; e < s->n && s->el[e] != '\n'; e++)
        if (s->el[e] >= TMPL_PH)
            has_ph = 1;
    f->line_start = 0;
    f->line_out = L->out.len;
    f->line_ph = -1;
    if (has_ph)
        return;
    size_t b = L->pos;
    while (h->strip && b < e && s->el[b] == '\t')
        b++;
    if (e - b != h->len)
        return;
    for (size_t i = 0; i < h->len; i++)
        if (s->el[b + i] != (unsigned char)h->delim[i])
            return;
    lex_take(L, e < s->n ? e + 1 : e);
    lex_heredoc_done(L);
}

/* At the end of a body line that had values. */
static void lex_heredoc_eol(lex *L, const lex_frame *f)
{
    if (f->line_ph < 0)
        return;
    const lex_heredoc *h = &L->hd[f->hd];
    const char *line = L->out.data + f->line_out;
    size_t len = L->out.len - f->line_out;
    while (h->strip && len && *line == '\t') {
        line++;
        len--;
    }
    if (len == h->len && !memcmp(line, h->delim, len))
        lex_fail_ph(L, f->line_ph,
                    "its value would make a line equal to the here-document's delimiter");
}

static void lex_heredoc_body(lex *L, lex_frame *f, int c, size_t next)
{
    if (c == '\n') {
        lex_heredoc_eol(L, f);
        lex_take(L, next);
        f->line_start = 1;
        f->line_ph = -1;
        return;
    }
    if (L->hd[f->hd].quoted) {
        lex_take(L, next);
        return;
    }
    if (c == '$') {
        lex_dollar(L, next);
        return;
    }
    if (c == '\\') {
        size_t n2;
        int d = lex_peek(L, next, &n2, 0);
        if (d >= TMPL_PH)
            lex_fail_ph(L, d - TMPL_PH, "it stands right after a backslash that would escape it");
        else if (d == '\n')
            lex_unsure(L, "a backslash-newline in an unquoted here-document");
        else
            lex_take(L, (d == '$' || d == '`' || d == '\\') ? n2 : next);
        return;
    }
    if (c == '`') {
        if (lex_push(L, F_CMD, SUB_BQ))
            lex_take(L, next);
        return;
    }
    lex_take(L, next);
}

static int lex_delim_add(lex *L, lex_heredoc *h, int c)
{
    if (c == '\n' || h->len + 1 >= LEX_DELIM) {
        lex_unsure(L, "a here-document delimiter with a newline or longer than 127 bytes");
        return -1;
    }
    h->delim[h->len++] = (char)c;
    return 0;
}

/* The delimiter word after `<<` or `<<-`, with its quotes removed. */
static void lex_heredoc_word(lex *L, int strip)
{
    if (L->nhd == LEX_HEREDOCS) {
        lex_unsure(L, "more than 8 here-documents on one line");
        return;
    }
    lex_heredoc *h = &L->hd[L->nhd];
    memset(h, 0, sizeof *h);
    h->strip = (unsigned char)strip;
    int q = 0; /* the quote we are in */
    for (;;) {
        size_t nx;
        int c = lex_peek(L, L->pos, &nx, q != '\'');
        if (c >= TMPL_PH) {
            lex_fail_ph(L, c - TMPL_PH, "it stands in a here-document delimiter");
            return;
        }
        if (q == 0 && h->len == 0 && !h->quoted && (c == ' ' || c == '\t')) {
            lex_take(L, nx);
            continue;
        }
        if (q == 0 && (c < 0 || strchr(" \t\n;&|()<>", c)))
            break;
        if (c < 0 || (q == 0 && (c == '$' || c == '`')) ||
            (q == '"' && (c == '\\' || c == '$' || c == '`'))) {
            lex_unsure(L, "a here-document delimiter with $, `, \\ in \"...\", or no end");
            return;
        }
        if (q == 0 && (c == '\'' || c == '"')) {
            q = c;
            h->quoted = 1;
        } else if (q && c == q) {
            q = 0;
        } else if (q == 0 && c == '\\') {
            int d = lex_peek(L, nx, &nx, 0);
            if (d >= TMPL_PH) {
                lex_fail_ph(L, d - TMPL_PH, "it stands in a here-document delimiter");
                return;
            }
            h->quoted = 1;
            if (d < 0 || lex_delim_add(L, h, d)) {
                lex_unsure(L, "a here-document delimiter ending in \\");
                return;
            }
        } else if (lex_delim_add(L, h, c)) {
            return;
        }
        lex_take(L, nx);
    }
    if (h->len == 0) {
        lex_unsure(L, "a here-document without a delimiter");
        return;
    }
    L->nhd++;
    lex_word_start(&L->st[L->top]);
}

/* ---- the contexts ---- */

/* L->pos is at a `$`. */
static void lex_dollar(lex *L, size_t next)
{
    size_t n2, n3;
    int d = lex_peek(L, next, &n2, 1);
    if (L->st[L->top].kind == F_CMD)
        lex_word_nested(&L->st[L->top]);
    if (d >= TMPL_PH) {
        lex_fail_ph(L, d - TMPL_PH,
                    "it stands right after $ (put the variable in ${NAME}, or a space)");
        return;
    }
    if (d == '(') {
        int arith = lex_peek(L, n2, &n3, 1) == '(';
        if (lex_push(L, arith ? F_ARITH : F_CMD, arith ? 0 : SUB_PAREN))
            lex_take(L, arith ? n3 : n2);
        return;
    }
    if (d == '{') {
        if (lex_push(L, F_PARAM, 0))
            lex_take(L, n2);
        return;
    }
    int kind = L->st[L->top].kind;
    if ((d == '\'' || d == '"') && (kind == F_DQ || kind == F_HEREDOC)) {
        lex_take(L, next); /* "...$" and "$'": a plain $ there, in every shell */
        return;
    }
    if (d == '\'' || d == '"' || d == '[' || d == '\\') {
        lex_unsure(L, "$', $\", $[ or $\\, which shells read differently");
        return;
    }
    if (tmpl_alpha(d) || d == '_') {
        size_t p = n2;
        for (;;) {
            int e = lex_peek(L, p, &n3, 1);
            if (e < 0 || e >= TMPL_PH || !tmpl_namec(e))
                break;
            p = n3;
        }
        lex_take(L, p);
        L->name_end = L->pos;
        return;
    }
    lex_take(L, d > 0 && (tmpl_digit(d) || strchr("@*#?$!-", d)) ? n2 : next);
}

/* L->pos is at a `\` outside quotes. */
static void lex_escape(lex *L, lex_frame *f, size_t next)
{
    size_t n2;
    int d = lex_peek(L, next, &n2, 0);
    if (d >= TMPL_PH) {
        lex_fail_ph(L, d - TMPL_PH, "it stands right after a backslash that would escape it");
        return;
    }
    lex_word_nested(f);
    lex_take(L, d >= 0 ? n2 : next);
}

static void lex_paren(lex *L, lex_frame *f, int c, size_t next)
{
    lex_word_end(L, f);
    if (f->sub == SUB_PAREN) {
        if (c == '(') {
            f->depth++;
        } else if (f->depth > 0) {
            f->depth--;
        } else {
            lex_take(L, next);
            lex_pop(L);
            return;
        }
    }
    lex_take(L, next);
}

static void lex_less(lex *L, lex_frame *f, size_t next)
{
    size_t n2, n3;
    lex_word_end(L, f);
    if (lex_peek(L, next, &n2, 1) != '<') {
        lex_take(L, next);
        return;
    }
    int e = lex_peek(L, n2, &n3, 1);
    if (e == '<') {
        lex_unsure(L, "<<< (a bash here-string)");
        return;
    }
    if (L->top != 0) {
        lex_unsure(L, "a here-document inside $( ) or backquotes");
        return;
    }
    lex_take(L, e == '-' ? n3 : n2);
    lex_heredoc_word(L, e == '-');
}

static void lex_cmd(lex *L, lex_frame *f, int c, size_t next)
{
    switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case ';':
    case '&':
    case '|':
    case '>':
        lex_word_end(L, f);
        lex_take(L, next);
        if (c == '\n' && lex_pending(L))
            lex_heredoc_begin(L);
        return;
    case '(':
    case ')':
        lex_paren(L, f, c, next);
        return;
    case '<':
        lex_less(L, f, next);
        return;
    case '#':
        if (!f->start)
            break;
        if (lex_push(L, F_COMMENT, 0))
            lex_take(L, next);
        return;
    case '\'':
    case '"':
    case '`':
        if (lex_push(L, c == '\'' ? F_SQ : c == '"' ? F_DQ : F_CMD, c == '`' ? SUB_BQ : 0))
            lex_take(L, next);
        return;
    case '\\':
        lex_escape(L, f, next);
        return;
    case '$':
        lex_dollar(L, next);
        return;
    }
    lex_word_char(f, c);
    lex_take(L, next);
    if (c == '~')
        L->tilde_end = L->pos;
}

static void lex_dq(lex *L, int c, size_t next)
{
    size_t n2;
    int d;
    switch (c) {
    case '"':
        lex_take(L, next);
        lex_pop(L);
        return;
    case '\\':
        d = lex_peek(L, next, &n2, 0);
        if (d >= TMPL_PH) {
            lex_fail_ph(L, d - TMPL_PH, "it stands right after a backslash that would escape it");
            return;
        }
        lex_take(L, (d == '$' || d == '`' || d == '"' || d == '\\') ? n2 : next);
        return;
    case '$':
        lex_dollar(L, next);
        return;
    case '`':
        if (lex_push(L, F_CMD, SUB_BQ))
            lex_take(L, next);
        return;
    }
    lex_take(L, next);
}

/* $(( )) and ${ }: only plain text and nested $ expansions are understood. */
static void lex_arith_param(lex *L, lex_frame *f, int c, size_t next)
{
    size_t n2;
    if (c == '$') {
        lex_dollar(L, next);
        return;
    }
    if (c == '\'' || c == '"' || c == '\\' || c == '`') {
        lex_unsure(L, "quotes, backslashes or backquotes inside $(( )) or ${ }");
        return;
    }
    if (f->kind == F_PARAM && c == '}') {
        lex_take(L, next);
        lex_pop(L);
        return;
    }
    if (f->kind == F_ARITH && c == '(')
        f->depth++;
    if (f->kind == F_ARITH && c == ')') {
        if (f->depth > 0) {
            f->depth--;
        } else if (lex_peek(L, next, &n2, 1) == ')') {
            lex_take(L, n2);
            lex_pop(L);
            return;
        } else {
            lex_unsure(L, "a ) that does not close $(( ))");
            return;
        }
    }
    lex_take(L, next);
}

/* The backquote that ends `...`. */
static void lex_bq_end(lex *L, size_t next)
{
    while (L->top > L->bq) {
        if (L->st[L->top].kind != F_COMMENT) {
            lex_unsure(L, "a backquote that ends `...` inside a quote or $( ) of its own");
            return;
        }
        lex_pop(L);
    }
    lex_take(L, next);
    lex_pop(L);
}

/* ---- values ---- */

static const char *const lex_reserved[] = {"case",  "do",     "done", "elif",   "else",     "esac",
                                           "fi",    "for",    "if",   "in",     "then",     "until",
                                           "while", "select", "time", "coproc", "function", NULL};

/* Walks the rest of the word from the value at L->pos on: the value, then the
 * command text and the plain values after it. lex_walk_next gives each
 * character (blanks and operators too, where the word ends), 0 at the end of
 * the text, -1 at a quote, an expansion or a value that will be quoted. */
typedef struct lex_walk {
    const lex *L;
    const char *v; /* the rest of the value being walked, or NULL */
    size_t p;      /* the next element after it */
} lex_walk;

static int lex_walk_next(lex_walk *w)
{
    for (;;) {
        if (w->v && *w->v)
            return (unsigned char)*w->v++;
        size_t nx;
        int e = lex_peek(w->L, w->p, &nx, 1);
        w->p = nx;
        if (e >= TMPL_PH) {
            w->v = w->L->s->ph[e - TMPL_PH].var->value;
            if (!w->v || !tmpl_plain(w->v))
                return -1;
            continue;
        }
        if (e == R_EOF || e == R_BQ_END)
            return 0;
        return e < 0 || strchr("'\"\\$`", e) ? -1 : e;
    }
}

static int lex_word_end_char(int c)
{
    return c == 0 || (c > 0 && strchr(" \t\n;&|()<>", c));
}

/* Would the word, from here on, be NAME=... (with what came before it)? */
static int lex_walk_assign(const lex *L, const char *v)
{
    lex_walk w = {L, v, L->pos + 1};
    int c;
    while ((c = lex_walk_next(&w)) > 0 && tmpl_namec(c))
        ;
    return c == '=';
}

/* Would the word, from here on, be digits right before < or >? */
static int lex_walk_io(const lex *L, const char *v)
{
    lex_walk w = {L, v, L->pos + 1};
    int c;
    while ((c = lex_walk_next(&w)) > 0 && tmpl_digit(c))
        ;
    return c == '<' || c == '>';
}

/* Would the word so far, the value and what follows be a reserved word? */
static int lex_walk_reserved(const lex *L, const lex_frame *f, const char *v)
{
    char word[LEX_WORD];
    size_t n = (size_t)f->wlen;
    memcpy(word, f->word, n);
    lex_walk w = {L, v, L->pos + 1};
    int c;
    while ((c = lex_walk_next(&w)) > 0 && tmpl_alpha(c)) {
        if (n == LEX_WORD)
            return 0; /* longer than any reserved word */
        word[n++] = (char)c;
    }
    if (!lex_word_end_char(c))
        return 0;
    for (const char *const *r = lex_reserved; *r; r++)
        if (strlen(*r) == n && !memcmp(*r, word, n))
            return 1;
    return 0;
}

/* A plain value outside quotes that dash would still read as syntax. The
 * walks over the rest of the word are done once per word: a word that is not
 * an assignment stays one for its later values. */
static int lex_force_quote(const lex *L, lex_frame *f, const char *v)
{
    if (L->pos == L->tilde_end)
        return 1; /* ~{{ v }} would be a user's home */
    if (f->name_ok && !f->no_assign) {
        if (lex_walk_assign(L, v))
            return 1; /* NAME=value: an assignment */
        f->no_assign = 1;
    }
    if (f->digits_ok && !f->no_io) {
        if (lex_walk_io(L, v))
            return 1; /* 2>file: a redirection of descriptor 2 */
        f->no_io = 1;
    }
    return f->wlen >= 0 && lex_walk_reserved(L, f, v);
}

/* Why the value cannot go here, or NULL. */
static const char *lex_refused(const lex *L, const lex_frame *f, const char *v)
{
    int nl = strchr(v, '\n') != NULL;
    if (L->pos == L->name_end)
        return "it stands right after $NAME and would extend the name (write ${NAME})";
    if (lex_in(L, F_PARAM))
        return "it stands inside ${ }, where no quoting is safe";
    if (lex_in(L, F_ARITH) && !tmpl_digits(v))
        return "inside $(( )) only a value of digits can go";
    if (nl && L->hd_frame >= 0)
        return "a value with a newline cannot go into a here-document";
    if (nl && lex_pending(L))
        return "a value with a newline cannot go on the line of a here-document operator";
    if (nl && f->kind == F_COMMENT)
        return "a value with a newline cannot go into a # comment";
    if (f->kind == F_HEREDOC && !L->hd[f->hd].quoted && strpbrk(v, "$`\\"))
        return "a value with $, ` or \\ cannot go into an unquoted here-document (quote its "
               "delimiter: <<'EOF')";
    return NULL;
}

static void lex_single_quote(tmpl_buf *q, const char *v, int outer)
{
    if (outer)
        tmpl_buf_addc(q, '\'');
    for (const char *p = v; *p; p++) {
        if (*p == '\'')
            tmpl_buf_add(q, "'\\''", 4);
        else
            tmpl_buf_addc(q, *p);
    }
    if (outer)
        tmpl_buf_addc(q, '\'');
}

/* The value written for context f into q. */
static void lex_quote(lex *L, lex_frame *f, const char *v, tmpl_buf *q)
{
    int plain = tmpl_plain(v);
    switch (f->kind) {
    case F_SQ:
        lex_single_quote(q, v, 0);
        return;
    case F_DQ:
        for (const char *p = v; *p; p++) {
            if (!plain && strchr("$`\"\\", *p))
                tmpl_buf_addc(q, '\\');
            tmpl_buf_addc(q, *p);
        }
        return;
    case F_CMD:
        if (plain && lex_force_quote(L, f, v))
            plain = 0;
        for (const char *p = v; plain && *p; p++)
            lex_word_char(f, (unsigned char)*p);
        if (!plain)
            lex_word_nested(f);
        break;
    case F_COMMENT:
        break;
    default: /* here-document bodies, $(( )): as is, lex_refused checked it */
        plain = 1;
    }
    if (plain)
        tmpl_buf_add(q, v, strlen(v));
    else
        lex_single_quote(q, v, 1);
}

static void lex_value(lex *L, int i, size_t next)
{
    lex_frame *f = &L->st[L->top];
    const char *v = L->s->ph[i].var->value ? L->s->ph[i].var->value : "";
    if (L->name_end == L->pos) /* $NAME\<newline>{{ v }} is $NAME{{ v }} */
        L->name_end = next - 1;
    if (L->tilde_end == L->pos)
        L->tilde_end = next - 1;
    lex_take(L, next - 1); /* backslash-newlines before it */
    const char *why = lex_refused(L, f, v);
    if (why) {
        lex_fail_ph(L, i, why);
        return;
    }
    tmpl_buf q = {0};
    tmpl_buf_add(&q, "", 0);
    lex_quote(L, f, v, &q);
    for (size_t k = 0; k < q.len; k++) {
        if (L->bq >= 0 && strchr("\\`$", q.data[k])) /* undone by the backquote's scan */
            tmpl_buf_addc(&L->out, '\\');
        tmpl_buf_addc(&L->out, q.data[k]);
    }
    mem_free(q.data);
    L->pos = next;
    L->nsubst++;
    L->last_ph = i;
    if (L->hd_frame >= 0)
        L->st[L->hd_frame].line_ph = i;
}

static void lex_step(lex *L, int c, size_t next)
{
    lex_frame *f = &L->st[L->top];
    if (c >= TMPL_PH) {
        lex_value(L, c - TMPL_PH, next);
        return;
    }
    switch (f->kind) {
    case F_CMD:
        lex_cmd(L, f, c, next);
        return;
    case F_SQ:
        lex_take(L, next);
        if (c == '\'')
            lex_pop(L);
        return;
    case F_DQ:
        lex_dq(L, c, next);
        return;
    case F_COMMENT:
        if (c == '\n')
            lex_pop(L); /* the newline is the command's */
        else
            lex_take(L, next);
        return;
    case F_ARITH:
    case F_PARAM:
        lex_arith_param(L, f, c, next);
        return;
    case F_HEREDOC:
        lex_heredoc_body(L, f, c, next);
        return;
    }
}

/* After the lexer stopped being sure: the rest is copied, and a value in it
 * is an error. */
static void lex_rest(lex *L)
{
    for (size_t p = L->pos; p < L->s->n; p++) {
        if (L->s->el[p] >= TMPL_PH) {
            char why[256];
            snprintf(why, sizeof why,
                     "cannot tell for sure how /bin/sh reads the command from offset %zu on (%s); "
                     "pass the value in the environment instead",
                     L->unsure_off, L->unsure);
            lex_fail_ph(L, L->s->el[p] - TMPL_PH, why);
            return;
        }
    }
    lex_take(L, L->s->n);
}

static const char *lex_frame_name(const lex_frame *f)
{
    static const char *const names[] = {"$( )", "'", "\"", "#", "$(( ))", "${ }", "<<"};
    return f->kind == F_CMD && f->sub == SUB_BQ ? "`" : names[f->kind];
}

/* At the end: a command with values must not end inside an open context. */
static void lex_end(lex *L)
{
    if (L->hd_frame >= 0 && L->top == L->hd_frame)
        lex_heredoc_eol(L, &L->st[L->hd_frame]);
    if (L->failed || L->nsubst == 0)
        return;
    for (int k = L->top; k >= 1; k--) {
        const lex_frame *f = &L->st[k];
        if (f->kind == F_COMMENT || f->kind == F_HEREDOC)
            continue;
        char why[128];
        snprintf(why, sizeof why, "the command ends inside the %s opened at offset %zu",
                 lex_frame_name(f), f->open);
        lex_fail_ph(L, L->last_ph, why);
        return;
    }
}

static void lex_run(lex *L)
{
    while (!L->failed && !L->unsure) {
        size_t next;
        int c = lex_peek(L, L->pos, &next, 1);
        if (c == R_EOF)
            break;
        if (c == R_UNSURE)
            lex_unsure(L, "\\` or \\\" inside backquotes");
        else if (c == R_BS_PH)
            lex_fail_ph(L, L->s->el[L->pos + 1] - TMPL_PH,
                        "it stands right after a backslash that would escape it");
        else if (c == '\n' && L->hd_frame >= 0 && L->top != L->hd_frame)
            lex_unsure(L, "a newline inside $( ), backquotes or ${ } in a here-document");
        else if (c == '\n' && lex_pending(L) && L->top != 0 &&
                 !(L->top == 1 && L->st[1].kind == F_COMMENT))
            lex_unsure(L, "a newline inside a quote or $( ) after a here-document operator");
        else if (c == R_BQ_END)
            lex_bq_end(L, next);
        else if (L->st[L->top].kind == F_HEREDOC && L->st[L->top].line_start)
            lex_heredoc_line(L, &L->st[L->top]);
        else
            lex_step(L, c, next);
    }
    if (L->failed)
        return;
    if (L->unsure)
        lex_rest(L);
    else
        lex_end(L);
}

static int tmpl_lex(const tmpl_seq *s, char **out, char *errbuf, size_t errlen)
{
    lex *L = mem_calloc(1, sizeof *L);
    L->s = s;
    L->st[0].kind = F_CMD;
    lex_word_start(&L->st[0]);
    L->bq = L->hd_frame = -1;
    L->name_end = L->tilde_end = (size_t)-1;
    L->errbuf = errbuf;
    L->errlen = errlen;
    tmpl_buf_add(&L->out, "", 0);
    lex_run(L);
    int rc = L->failed ? -1 : 0;
    if (rc == 0)
        *out = L->out.data;
    else
        mem_free(L->out.data);
    mem_free(L);
    return rc;
}

int tmpl_render(const char *src, const tmpl_var *vars, size_t n, char **out, char *errbuf,
                size_t errlen)
{
    *out = NULL;
    if (!src) {
        errbuf_printf(errbuf, errlen, "no template");
        return -1;
    }
    tmpl_seq s = {0};
    int rc = tmpl_parse(src, vars, n, &s, errbuf, errlen);
    if (rc == 0)
        rc = tmpl_lex(&s, out, errbuf, errlen);
    tmpl_seq_free(&s);
    return rc;
}

int tmpl_param_env_name(const char *key, char *buf, size_t len, char *errbuf, size_t errlen)
{
    static const char prefix[] = "DAGQ_PARAM_";
    size_t n = strlen(key);
    if (n == 0) {
        errbuf_printf(errbuf, errlen, "an empty param name has no environment variable");
        return -1;
    }
    if (tmpl_digit((unsigned char)key[0])) {
        errbuf_printf(errbuf, errlen,
                      "a param name that starts with a digit has no environment "
                      "variable");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!tmpl_namec((unsigned char)key[i])) {
            errbuf_printf(
                errbuf, errlen,
                "param name has a byte (0x%02x at %zu) an environment variable name cannot "
                "hold: only letters, digits and _",
                (unsigned char)key[i], i);
            return -1;
        }
    }
    if (sizeof prefix + n > len) {
        errbuf_printf(errbuf, errlen, "param name too long for an environment variable (%zu bytes)",
                      n);
        return -1;
    }
    memcpy(buf, prefix, sizeof prefix - 1);
    for (size_t i = 0; i < n; i++)
        buf[sizeof prefix - 1 + i] =
            (key[i] >= 'a' && key[i] <= 'z') ? (char)(key[i] - 'a' + 'A') : key[i];
    buf[sizeof prefix - 1 + n] = '\0';
    return 0;
}

/* UTC calendar fields of t, by integer arithmetic (cron_civil_from_days): no
 * time zone, no locale, and no gmtime failure for out-of-range years. */
typedef struct tmpl_tm {
    long long year;
    int mon, day, hour, min, sec;
} tmpl_tm;

static tmpl_tm tmpl_utc(long long t)
{
    tmpl_tm tm;
    long long days = t / 86400, secs = t % 86400;
    if (secs < 0) { /* floor, not truncation, for times before 1970 */
        secs += 86400;
        days--;
    }
    int64_t y;
    cron_civil_from_days(days, &y, &tm.mon, &tm.day);
    tm.year = y;
    tm.hour = (int)(secs / 3600);
    tm.min = (int)(secs / 60 % 60);
    tm.sec = (int)(secs % 60);
    return tm;
}

static void tmpl_ts(char buf[40], long long t)
{
    tmpl_tm tm = tmpl_utc(t);
    snprintf(buf, 40, "%04lld-%02d-%02dT%02d:%02d:%02d+00:00", tm.year, tm.mon, tm.day, tm.hour,
             tm.min, tm.sec);
}

void tmpl_date_vars(long long logical_date, long long start, long long end, tmpl_var *vars,
                    char bufs[5][40])
{
    tmpl_tm tm = tmpl_utc(logical_date);

    snprintf(bufs[0], 40, "%04lld-%02d-%02d", tm.year, tm.mon, tm.day);
    snprintf(bufs[1], 40, "%04lld%02d%02d", tm.year, tm.mon, tm.day);
    tmpl_ts(bufs[2], logical_date);
    tmpl_ts(bufs[3], start);
    tmpl_ts(bufs[4], end);

    vars[0] = (tmpl_var){"ds", bufs[0], TMPL_FROM_DAG};
    vars[1] = (tmpl_var){"ds_nodash", bufs[1], TMPL_FROM_DAG};
    vars[2] = (tmpl_var){"ts", bufs[2], TMPL_FROM_DAG};
    vars[3] = (tmpl_var){"data_interval_start", bufs[3], TMPL_FROM_DAG};
    vars[4] = (tmpl_var){"data_interval_end", bufs[4], TMPL_FROM_DAG};
}
