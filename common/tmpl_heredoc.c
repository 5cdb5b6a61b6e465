/* tmpl_heredoc — here-documents for the shell lexer: the delimiter word after
 * `<<` or `<<-`, the bodies that begin after the operator's line, and the line
 * that ends each (tmpl_lex.h). */
#include "tmpl_lex.h"

#include <string.h>

/* ---- bodies ---- */

void tmpl__heredoc_begin(lex *L)
{
    lex_frame *f = tmpl__push(L, F_HEREDOC, 0);
    if (!f)
        return;
    f->hd = L->hd_next++;
    f->line_start = 1;
}

static void lex_heredoc_done(lex *L)
{
    tmpl__pop(L);
    if (L->hd_next < L->nhd) {
        tmpl__heredoc_begin(L);
        return;
    }
    L->nhd = L->hd_next = 0;
    tmpl__word_start(&L->st[0]);
}

/* At the start of a body line: a line of only command text that equals the
 * delimiter ends the body. A line with values is checked once rendered. */
void tmpl__heredoc_line(lex *L, lex_frame *f)
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
    tmpl__take(L, e < s->n ? e + 1 : e);
    lex_heredoc_done(L);
}

/* At the end of a body line that had values. */
void tmpl__heredoc_eol(lex *L, const lex_frame *f)
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
        tmpl__fail_ph(L, f->line_ph,
                      "its value would make a line equal to the here-document's delimiter");
}

void tmpl__heredoc_body(lex *L, lex_frame *f, int c, size_t next)
{
    if (c == '\n') {
        tmpl__heredoc_eol(L, f);
        tmpl__take(L, next);
        f->line_start = 1;
        f->line_ph = -1;
        return;
    }
    if (L->hd[f->hd].quoted) {
        tmpl__take(L, next);
        return;
    }
    if (c == '$') {
        tmpl__dollar(L, next);
        return;
    }
    if (c == '\\') {
        size_t n2;
        int d = tmpl__peek(L, next, &n2, 0);
        if (d >= TMPL_PH)
            tmpl__fail_ph(L, d - TMPL_PH, "it stands right after a backslash that would escape it");
        else if (d == '\n')
            tmpl__unsure(L, "a backslash-newline in an unquoted here-document");
        else
            tmpl__take(L, (d == '$' || d == '`' || d == '\\') ? n2 : next);
        return;
    }
    if (c == '`') {
        if (tmpl__push(L, F_CMD, SUB_BQ))
            tmpl__take(L, next);
        return;
    }
    tmpl__take(L, next);
}

/* ---- the delimiter ---- */

static int lex_delim_add(lex *L, lex_heredoc *h, int c)
{
    if (c == '\n' || h->len + 1 >= LEX_DELIM) {
        tmpl__unsure(L, "a here-document delimiter with a newline or longer than 127 bytes");
        return -1;
    }
    h->delim[h->len++] = (char)c;
    return 0;
}

/* A `\` outside quotes in the delimiter word: the character it escapes is
 * part of the delimiter and makes it quoted; *nx moves past that character.
 * 1, or -1 when the lexer failed or stopped being sure. */
static int lex_delim_escape(lex *L, lex_heredoc *h, size_t *nx)
{
    int d = tmpl__peek(L, *nx, nx, 0);
    if (d >= TMPL_PH) {
        tmpl__fail_ph(L, d - TMPL_PH, "it stands in a here-document delimiter");
        return -1;
    }
    h->quoted = 1;
    if (d < 0 || lex_delim_add(L, h, d)) {
        tmpl__unsure(L, "a here-document delimiter ending in \\");
        return -1;
    }
    return 1;
}

/* One element c of the delimiter word, in the quote *q (0: none); *nx is just
 * after it. 1: go on; 0: c ends the word; -1: the lexer failed or stopped
 * being sure. */
static int lex_delim_step(lex *L, lex_heredoc *h, int *q, int c, size_t *nx)
{
    if (*q == 0 && (c < 0 || strchr(" \t\n;&|()<>", c)))
        return 0;
    if (c < 0 || (*q == 0 && (c == '$' || c == '`')) ||
        (*q == '"' && (c == '\\' || c == '$' || c == '`'))) {
        tmpl__unsure(L, "a here-document delimiter with $, `, \\ in \"...\", or no end");
        return -1;
    }
    if (*q == 0 && (c == '\'' || c == '"')) {
        *q = c;
        h->quoted = 1;
    } else if (*q && c == *q) {
        *q = 0;
    } else if (*q == 0 && c == '\\') {
        return lex_delim_escape(L, h, nx);
    } else if (lex_delim_add(L, h, c)) {
        return -1;
    }
    return 1;
}

/* The delimiter word after `<<` or `<<-`, with its quotes removed. */
void tmpl__heredoc_word(lex *L, int strip)
{
    if (L->nhd == LEX_HEREDOCS) {
        tmpl__unsure(L, "more than 8 here-documents on one line");
        return;
    }
    lex_heredoc *h = &L->hd[L->nhd];
    memset(h, 0, sizeof *h);
    h->strip = (unsigned char)strip;
    int q = 0; /* the quote we are in */
    for (;;) {
        size_t nx;
        int c = tmpl__peek(L, L->pos, &nx, q != '\'');
        if (c >= TMPL_PH) {
            tmpl__fail_ph(L, c - TMPL_PH, "it stands in a here-document delimiter");
            return;
        }
        int blank = q == 0 && h->len == 0 && !h->quoted && (c == ' ' || c == '\t');
        if (!blank) { /* blanks before the word are skipped */
            int go = lex_delim_step(L, h, &q, c, &nx);
            if (go < 0)
                return;
            if (go == 0)
                break;
        }
        tmpl__take(L, nx);
    }
    if (h->len == 0) {
        tmpl__unsure(L, "a here-document without a delimiter");
        return;
    }
    L->nhd++;
    tmpl__word_start(&L->st[L->top]);
}
