/* tmpl_shell — the shell lexer's reading of the command text: the elements as
 * dash reads them, words, the stack of contexts, each context's syntax, and
 * the run that ends with the rendered command (tmpl__lex). Here-documents are
 * tmpl_heredoc.c's, values tmpl_quote.c's; tmpl_lex.h is their shared state. */
#include "tmpl_lex.h"

#include "errbuf.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

void tmpl__buf_add(tmpl_buf *b, const char *s, size_t n)
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

void tmpl__buf_addc(tmpl_buf *b, char c)
{
    tmpl__buf_add(b, &c, 1);
}

static size_t lex_off(const lex *L, size_t pos)
{
    const tmpl_seq *s = L->s;
    return pos < s->n ? s->off[pos] : s->n ? s->off[s->n - 1] + 1 : 0;
}

void tmpl__unsure(lex *L, const char *why)
{
    if (!L->unsure) {
        L->unsure = why;
        L->unsure_off = lex_off(L, L->pos);
    }
}

void tmpl__fail_ph(lex *L, int i, const char *why)
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
 * \\ and \$ read as \ and $. For R_BS_PH *next is the placeholder's position. */
int tmpl__peek(const lex *L, size_t pos, size_t *next, int bnl)
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
void tmpl__take(lex *L, size_t next)
{
    for (; L->pos < next; L->pos++)
        tmpl__buf_addc(&L->out, (char)L->s->el[L->pos]);
}

/* ---- words ---- */

void tmpl__word_start(lex_frame *f)
{
    f->start = f->name_ok = f->digits_ok = 1;
    f->no_assign = f->no_io = 0;
    f->wlen = 0;
}

/* A quote or an expansion in the middle of the word. */
void tmpl__word_nested(lex_frame *f)
{
    f->start = f->name_ok = f->digits_ok = 0;
    f->wlen = -1;
}

void tmpl__word_char(lex_frame *f, int c)
{
    f->start = 0;
    if (!tmpl__namec(c))
        f->name_ok = 0;
    if (!tmpl__digit(c))
        f->digits_ok = 0;
    if (f->wlen >= 0 && tmpl__alpha(c) && f->wlen < LEX_WORD)
        f->word[f->wlen++] = (char)c;
    else
        f->wlen = -1;
}

/* `case` inside $( ) makes `)` a pattern's end, not the substitution's. */
static void lex_word_end(lex *L, lex_frame *f)
{
    if (f->sub == SUB_PAREN && f->wlen == 4 && !memcmp(f->word, "case", 4))
        tmpl__unsure(L, "case inside $( )");
    tmpl__word_start(f);
}

/* ---- the stack ---- */

lex_frame *tmpl__push(lex *L, int kind, int sub)
{
    if (L->top + 1 >= LEX_FRAMES) {
        tmpl__unsure(L, "nesting deeper than 32 levels");
        return NULL;
    }
    lex_frame *parent = &L->st[L->top];
    if (parent->kind == F_CMD && kind != F_COMMENT && kind != F_HEREDOC)
        tmpl__word_nested(parent);
    lex_frame *f = &L->st[++L->top];
    memset(f, 0, sizeof *f);
    f->kind = (unsigned char)kind;
    f->sub = (unsigned char)sub;
    f->open = lex_off(L, L->pos);
    f->line_ph = -1;
    if (kind == F_CMD)
        tmpl__word_start(f);
    if (sub == SUB_BQ)
        L->bq = L->top;
    if (kind == F_HEREDOC)
        L->hd_frame = L->top;
    return f;
}

void tmpl__pop(lex *L)
{
    lex_frame *f = &L->st[L->top];
    if (f->sub == SUB_BQ)
        L->bq = -1;
    if (f->kind == F_HEREDOC)
        L->hd_frame = -1;
    L->top--;
}

/* A here-document operator was read on this line; its body has not begun. */
int tmpl__pending(const lex *L)
{
    return L->hd_frame < 0 && L->nhd > L->hd_next;
}

/* ---- the contexts ---- */

/* L->pos is at a `$`. */
void tmpl__dollar(lex *L, size_t next)
{
    size_t n2, n3;
    int d = tmpl__peek(L, next, &n2, 1);
    if (L->st[L->top].kind == F_CMD)
        tmpl__word_nested(&L->st[L->top]);
    if (d >= TMPL_PH) {
        tmpl__fail_ph(L, d - TMPL_PH,
                      "it stands right after $ (put the variable in ${NAME}, or a space)");
        return;
    }
    if (d == '(') {
        int arith = tmpl__peek(L, n2, &n3, 1) == '(';
        if (tmpl__push(L, arith ? F_ARITH : F_CMD, arith ? 0 : SUB_PAREN))
            tmpl__take(L, arith ? n3 : n2);
        return;
    }
    if (d == '{') {
        if (tmpl__push(L, F_PARAM, 0))
            tmpl__take(L, n2);
        return;
    }
    int kind = L->st[L->top].kind;
    if ((d == '\'' || d == '"') && (kind == F_DQ || kind == F_HEREDOC)) {
        tmpl__take(L, next); /* "...$" and "$'": a plain $ there, in every shell */
        return;
    }
    if (d == '\'' || d == '"' || d == '[' || d == '\\') {
        tmpl__unsure(L, "$', $\", $[ or $\\, which shells read differently");
        return;
    }
    if (tmpl__alpha(d) || d == '_') {
        size_t p = n2;
        for (;;) {
            int e = tmpl__peek(L, p, &n3, 1);
            if (e < 0 || e >= TMPL_PH || !tmpl__namec(e))
                break;
            p = n3;
        }
        tmpl__take(L, p);
        L->name_end = L->pos;
        return;
    }
    tmpl__take(L, d > 0 && (tmpl__digit(d) || strchr("@*#?$!-", d)) ? n2 : next);
}

/* L->pos is at a `\` outside quotes. */
static void lex_escape(lex *L, lex_frame *f, size_t next)
{
    size_t n2;
    int d = tmpl__peek(L, next, &n2, 0);
    if (d >= TMPL_PH) {
        tmpl__fail_ph(L, d - TMPL_PH, "it stands right after a backslash that would escape it");
        return;
    }
    tmpl__word_nested(f);
    tmpl__take(L, d >= 0 ? n2 : next);
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
            tmpl__take(L, next);
            tmpl__pop(L);
            return;
        }
    }
    tmpl__take(L, next);
}

static void lex_less(lex *L, lex_frame *f, size_t next)
{
    size_t n2, n3;
    lex_word_end(L, f);
    if (tmpl__peek(L, next, &n2, 1) != '<') {
        tmpl__take(L, next);
        return;
    }
    int e = tmpl__peek(L, n2, &n3, 1);
    if (e == '<') {
        tmpl__unsure(L, "<<< (a bash here-string)");
        return;
    }
    if (L->top != 0) {
        tmpl__unsure(L, "a here-document inside $( ) or backquotes");
        return;
    }
    tmpl__take(L, e == '-' ? n3 : n2);
    tmpl__heredoc_word(L, e == '-');
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
        tmpl__take(L, next);
        if (c == '\n' && tmpl__pending(L))
            tmpl__heredoc_begin(L);
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
        if (tmpl__push(L, F_COMMENT, 0))
            tmpl__take(L, next);
        return;
    case '\'':
    case '"':
    case '`':
        if (tmpl__push(L, c == '\'' ? F_SQ : c == '"' ? F_DQ : F_CMD, c == '`' ? SUB_BQ : 0))
            tmpl__take(L, next);
        return;
    case '\\':
        lex_escape(L, f, next);
        return;
    case '$':
        tmpl__dollar(L, next);
        return;
    }
    tmpl__word_char(f, c);
    tmpl__take(L, next);
    if (c == '~')
        L->tilde_end = L->pos;
}

static void lex_dq(lex *L, int c, size_t next)
{
    size_t n2;
    int d;
    switch (c) {
    case '"':
        tmpl__take(L, next);
        tmpl__pop(L);
        return;
    case '\\':
        d = tmpl__peek(L, next, &n2, 0);
        if (d >= TMPL_PH) {
            tmpl__fail_ph(L, d - TMPL_PH, "it stands right after a backslash that would escape it");
            return;
        }
        tmpl__take(L, (d == '$' || d == '`' || d == '"' || d == '\\') ? n2 : next);
        return;
    case '$':
        tmpl__dollar(L, next);
        return;
    case '`':
        if (tmpl__push(L, F_CMD, SUB_BQ))
            tmpl__take(L, next);
        return;
    }
    tmpl__take(L, next);
}

/* $(( )) and ${ }: only plain text and nested $ expansions are understood. */
static void lex_arith_param(lex *L, lex_frame *f, int c, size_t next)
{
    size_t n2;
    if (c == '$') {
        tmpl__dollar(L, next);
        return;
    }
    if (c == '\'' || c == '"' || c == '\\' || c == '`') {
        tmpl__unsure(L, "quotes, backslashes or backquotes inside $(( )) or ${ }");
        return;
    }
    if (f->kind == F_PARAM && c == '}') {
        tmpl__take(L, next);
        tmpl__pop(L);
        return;
    }
    if (f->kind == F_ARITH && c == '(')
        f->depth++;
    if (f->kind == F_ARITH && c == ')') {
        if (f->depth > 0) {
            f->depth--;
        } else if (tmpl__peek(L, next, &n2, 1) == ')') {
            tmpl__take(L, n2);
            tmpl__pop(L);
            return;
        } else {
            tmpl__unsure(L, "a ) that does not close $(( ))");
            return;
        }
    }
    tmpl__take(L, next);
}

/* The backquote that ends `...`. */
static void lex_bq_end(lex *L, size_t next)
{
    while (L->top > L->bq) {
        if (L->st[L->top].kind != F_COMMENT) {
            tmpl__unsure(L, "a backquote that ends `...` inside a quote or $( ) of its own");
            return;
        }
        tmpl__pop(L);
    }
    tmpl__take(L, next);
    tmpl__pop(L);
}

static void lex_step(lex *L, int c, size_t next)
{
    lex_frame *f = &L->st[L->top];
    if (c >= TMPL_PH) {
        tmpl__value(L, c - TMPL_PH, next);
        return;
    }
    switch (f->kind) {
    case F_CMD:
        lex_cmd(L, f, c, next);
        return;
    case F_SQ:
        tmpl__take(L, next);
        if (c == '\'')
            tmpl__pop(L);
        return;
    case F_DQ:
        lex_dq(L, c, next);
        return;
    case F_COMMENT:
        if (c == '\n')
            tmpl__pop(L); /* the newline is the command's */
        else
            tmpl__take(L, next);
        return;
    case F_ARITH:
    case F_PARAM:
        lex_arith_param(L, f, c, next);
        return;
    case F_HEREDOC:
        tmpl__heredoc_body(L, f, c, next);
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
            tmpl__fail_ph(L, L->s->el[p] - TMPL_PH, why);
            return;
        }
    }
    tmpl__take(L, L->s->n);
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
        tmpl__heredoc_eol(L, &L->st[L->hd_frame]);
    if (L->failed || L->nsubst == 0)
        return;
    for (int k = L->top; k >= 1; k--) {
        const lex_frame *f = &L->st[k];
        if (f->kind == F_COMMENT || f->kind == F_HEREDOC)
            continue;
        char why[128];
        snprintf(why, sizeof why, "the command ends inside the %s opened at offset %zu",
                 lex_frame_name(f), f->open);
        tmpl__fail_ph(L, L->last_ph, why);
        return;
    }
}

static void lex_run(lex *L)
{
    while (!L->failed && !L->unsure) {
        size_t next;
        int c = tmpl__peek(L, L->pos, &next, 1);
        if (c == R_EOF)
            break;
        if (c == R_UNSURE)
            tmpl__unsure(L, "\\` or \\\" inside backquotes");
        else if (c == R_BS_PH)
            tmpl__fail_ph(L, L->s->el[next] - TMPL_PH, /* not L->pos + 1: \<newline> */
                          "it stands right after a backslash that would escape it");
        else if (c == '\n' && L->hd_frame >= 0 && L->top != L->hd_frame)
            tmpl__unsure(L, "a newline inside $( ), backquotes or ${ } in a here-document");
        else if (c == '\n' && tmpl__pending(L) && L->top != 0 &&
                 !(L->top == 1 && L->st[1].kind == F_COMMENT))
            tmpl__unsure(L, "a newline inside a quote or $( ) after a here-document operator");
        else if (c == R_BQ_END)
            lex_bq_end(L, next);
        else if (L->st[L->top].kind == F_HEREDOC && L->st[L->top].line_start)
            tmpl__heredoc_line(L, &L->st[L->top]);
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

int tmpl__lex(const tmpl_seq *s, char **out, char *errbuf, size_t errlen)
{
    lex *L = mem_calloc(1, sizeof *L);
    L->s = s;
    L->st[0].kind = F_CMD;
    tmpl__word_start(&L->st[0]);
    L->bq = L->hd_frame = -1;
    L->name_end = L->tilde_end = (size_t)-1;
    L->errbuf = errbuf;
    L->errlen = errlen;
    tmpl__buf_add(&L->out, "", 0);
    lex_run(L);
    int rc = L->failed ? -1 : 0;
    if (rc == 0)
        *out = L->out.data;
    else
        mem_free(L->out.data);
    mem_free(L);
    return rc;
}
