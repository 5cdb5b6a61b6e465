/* tmpl_lex — the shell lexer's state, shared by tmpl_shell.c, tmpl_heredoc.c
 * and tmpl_quote.c (internal to them; tmpl.c sees only tmpl_shell.h).
 *
 * The lexer reads the command text the way dash does, keeping a stack of the
 * contexts it is in, and decides at each placeholder how its value must be
 * written. It never looks at a value to decide where it is: a quoted value is
 * one complete word part, and a plain value is made of characters that are
 * word characters everywhere (with the exceptions tmpl_quote.c's
 * lex_force_quote handles). Where it cannot be sure it says why
 * (tmpl__unsure) and stops: every placeholder after that point is an error.
 *
 * Every function here takes the lexer at L->pos, the element it reads, and
 * (next) the position just after that element as tmpl__peek found it. */
#ifndef DAGQ_TMPL_LEX_H
#define DAGQ_TMPL_LEX_H

#include "tmpl_shell.h"

#include <stddef.h>

/* The output, always NUL-terminated once something was added. */
typedef struct tmpl_buf {
    char *data;
    size_t len, cap;
} tmpl_buf;

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

/* ---- tmpl_shell.c: output, reading, words, the stack, $ ---- */

void tmpl__buf_add(tmpl_buf *b, const char *s, size_t n);
void tmpl__buf_addc(tmpl_buf *b, char c);

/* Records the first reason the lexer stopped being sure (at L->pos). */
void tmpl__unsure(lex *L, const char *why);

/* Fails the render at placeholder i, naming its variable and offset. */
void tmpl__fail_ph(lex *L, int i, const char *why);

/* The element at pos as the current context reads it; *next is just after
 * it. bnl: skip backslash-newline pairs first (not for the character a
 * backslash escapes). Inside `...` this also undoes the backquote's escapes:
 * \\ and \$ read as \ and $. A byte, a placeholder (>= TMPL_PH) or an R_*;
 * for R_BS_PH *next is the position of the placeholder. */
int tmpl__peek(const lex *L, size_t pos, size_t *next, int bnl);

/* Copies command text [L->pos, next) to the output. */
void tmpl__take(lex *L, size_t next);

/* The current word of an F_CMD frame: begins; a quote or an expansion in it;
 * one more plain character. */
void tmpl__word_start(lex_frame *f);
void tmpl__word_nested(lex_frame *f);
void tmpl__word_char(lex_frame *f, int c);

/* A new context of kind (and sub, for F_CMD) opened at L->pos; NULL (and
 * unsure) when nesting is too deep. */
lex_frame *tmpl__push(lex *L, int kind, int sub);
void tmpl__pop(lex *L);

/* A here-document operator was read on this line; its body has not begun. */
int tmpl__pending(const lex *L);

/* L->pos is at a `$`. */
void tmpl__dollar(lex *L, size_t next);

/* ---- tmpl_heredoc.c ---- */

/* The body of the next here-document of the line begins (after its newline). */
void tmpl__heredoc_begin(lex *L);

/* At the start of a body line: a line of only command text that equals the
 * delimiter ends the body. A line with values is checked once rendered. */
void tmpl__heredoc_line(lex *L, lex_frame *f);

/* At the end of a body line that had values. */
void tmpl__heredoc_eol(lex *L, const lex_frame *f);

/* One element c of a body. */
void tmpl__heredoc_body(lex *L, lex_frame *f, int c, size_t next);

/* The delimiter word after `<<` or `<<-` (strip), with its quotes removed. */
void tmpl__heredoc_word(lex *L, int strip);

/* ---- tmpl_quote.c ---- */

/* Placeholder i stands at L->pos: writes its value for where it stands, or
 * fails the render saying why no quoting is safe there. */
void tmpl__value(lex *L, int i, size_t next);

#endif
