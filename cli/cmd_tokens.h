/* cmd_tokens — `dagq tokens create|list|revoke`: dagq-web's API tokens,
 * through dagq.token_create and dagq.token_revoke (sql/013_web.sql), which
 * only members of dagq_admin may call. A token is printed once, alone on
 * the last line of standard output; the metastore keeps its SHA-256. */
#ifndef DAGQ_CMD_TOKENS_H
#define DAGQ_CMD_TOKENS_H

#include "cmd.h"

int cmd_tokens_create(cmd_ctx *c);
int cmd_tokens_list(cmd_ctx *c);
int cmd_tokens_revoke(cmd_ctx *c);

#endif
