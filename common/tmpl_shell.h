/* tmpl_shell — what tmpl.c hands the shell lexer (internal to common/tmpl*.c).
 *
 * tmpl.c parses a template into elements: the bytes of command text (the
 * template's literal text, and the values of `| raw` placeholders, which are
 * command text by the author's word), and one element per placeholder whose
 * value is to be quoted. tmpl__lex reads only the bytes, the way dash does,
 * and writes each placeholder's value quoted for the place it stands in
 * (tmpl.h says how, and where it refuses).
 *
 * The lexer is three files sharing the state in tmpl_lex.h: tmpl_shell.c
 * (reading the command text: contexts, words, the run), tmpl_heredoc.c
 * (here-documents) and tmpl_quote.c (where a value may go and how it is
 * written). */
#ifndef DAGQ_TMPL_SHELL_H
#define DAGQ_TMPL_SHELL_H

#include "tmpl.h"

#include <stddef.h>

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

/* ASCII classes, independent of the locale. */
static inline int tmpl__alpha(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline int tmpl__digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline int tmpl__namec(int c)
{
    return tmpl__alpha(c) || tmpl__digit(c) || c == '_';
}

/* Lexes s (borrowed) and writes the command: 0 and *out (caller frees with
 * mem_free), or -1 with the reason in errbuf (naming a variable and an
 * offset, never a value) and *out untouched. */
int tmpl__lex(const tmpl_seq *s, char **out, char *errbuf, size_t errlen);

#endif
