/* tmpl_quote — values for the shell lexer: where a value cannot go, where a
 * plain value must still be quoted (a tilde prefix, an assignment, a
 * redirection's descriptor, a reserved word), and how a value is written for
 * the context it stands in (tmpl_lex.h). */
#include "tmpl_lex.h"

#include "mem.h"

#include <string.h>

/* A value dash reads as one plain word wherever a word may stand. */
static int tmpl_plain(const char *v)
{
    if (!*v)
        return 0;
    for (const char *p = v; *p; p++)
        if (!tmpl__namec((unsigned char)*p) && !strchr("./:+=,@%-", *p))
            return 0;
    return 1;
}

static int tmpl_digits(const char *v)
{
    if (!*v)
        return 0;
    for (const char *p = v; *p; p++)
        if (!tmpl__digit((unsigned char)*p))
            return 0;
    return 1;
}

static int lex_in(const lex *L, int kind)
{
    for (int k = 1; k <= L->top; k++)
        if (L->st[k].kind == kind)
            return 1;
    return 0;
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
        int e = tmpl__peek(w->L, w->p, &nx, 1);
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
    while ((c = lex_walk_next(&w)) > 0 && tmpl__namec(c))
        ;
    return c == '=';
}

/* Would the word, from here on, be digits right before < or >? */
static int lex_walk_io(const lex *L, const char *v)
{
    lex_walk w = {L, v, L->pos + 1};
    int c;
    while ((c = lex_walk_next(&w)) > 0 && tmpl__digit(c))
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
    while ((c = lex_walk_next(&w)) > 0 && tmpl__alpha(c)) {
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
    if (nl && tmpl__pending(L))
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
        tmpl__buf_addc(q, '\'');
    for (const char *p = v; *p; p++) {
        if (*p == '\'')
            tmpl__buf_add(q, "'\\''", 4);
        else
            tmpl__buf_addc(q, *p);
    }
    if (outer)
        tmpl__buf_addc(q, '\'');
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
                tmpl__buf_addc(q, '\\');
            tmpl__buf_addc(q, *p);
        }
        return;
    case F_CMD:
        if (plain && lex_force_quote(L, f, v))
            plain = 0;
        for (const char *p = v; plain && *p; p++)
            tmpl__word_char(f, (unsigned char)*p);
        if (!plain)
            tmpl__word_nested(f);
        break;
    case F_COMMENT:
        break;
    default: /* here-document bodies, $(( )): as is, lex_refused checked it */
        plain = 1;
    }
    if (plain)
        tmpl__buf_add(q, v, strlen(v));
    else
        lex_single_quote(q, v, 1);
}

void tmpl__value(lex *L, int i, size_t next)
{
    lex_frame *f = &L->st[L->top];
    const char *v = L->s->ph[i].var->value ? L->s->ph[i].var->value : "";
    if (L->name_end == L->pos) /* $NAME\<newline>{{ v }} is $NAME{{ v }} */
        L->name_end = next - 1;
    if (L->tilde_end == L->pos)
        L->tilde_end = next - 1;
    tmpl__take(L, next - 1); /* backslash-newlines before it */
    const char *why = lex_refused(L, f, v);
    if (why) {
        tmpl__fail_ph(L, i, why);
        return;
    }
    tmpl_buf q = {0};
    tmpl__buf_add(&q, "", 0);
    lex_quote(L, f, v, &q);
    for (size_t k = 0; k < q.len; k++) {
        if (L->bq >= 0 && strchr("\\`$", q.data[k])) /* undone by the backquote's scan */
            tmpl__buf_addc(&L->out, '\\');
        tmpl__buf_addc(&L->out, q.data[k]);
    }
    mem_free(q.data);
    L->pos = next;
    L->nsubst++;
    L->last_ph = i;
    if (L->hd_frame >= 0)
        L->st[L->hd_frame].line_ph = i;
}
