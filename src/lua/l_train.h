/* l_train.h - what the Trainer binding files share (src/lua only): the Trainer userdata, the
 * loss-spec and batch parsers, and the statistics methods registered by l_train.c.
 *   l_train.c        Trainer creation, tr:step / save / state, core.raw_batch_order, registration
 *   l_loss.c         loss specs ({kind = "infonce" | "cosent" | ...}) into LossSpec trees
 *   l_train_batch.c  batch tables into tokenized TrainBatch
 *   l_train_stats.c  tr:loss / accumulate / grams / reset_stats, core.raw_merge_data and
 *                    core.raw_grad_conflict */
#ifndef AM_L_TRAIN_H
#define AM_L_TRAIN_H

#include "am_lua.h"
#include "trainer.h"

#define AM_TRAINER_MT "amalgam.Trainer"

typedef struct {
    Trainer *t;        /* NULL = closed */
    Model *m;          /* owned copy trained in place */
    EmbedModel *em;    /* borrowed from the model handle (user value 1) */
    size_t enc_total;  /* floats of the encoder without the MLM head */
    int max_len;
    char base_id[AM_ID_HEX + 1];
    TokenBatch tb[3];
    float *scores;
    int cap_scores;
    float *acc;        /* tr:accumulate: Σ grad or Σ grad² (model-sized), n_acc batches */
    int n_acc;
    double *gsum[4 * AM_MAX_LAYERS]; /* tr:grams: Σ XᵀX per linear (merge_stats.h order), g_rows rows */
    int g_lin[4 * AM_MAX_LAYERS], n_g;
    size_t g_rows;
} TrainerBox;

/* Raises unless argument i is an open Trainer. */
TrainerBox *am_lua_checktrainer(lua_State *L, int i);

/* Loss specs of one tr:step live in a scratch pool (a GC'd userdata). */
#define MAX_SPECS 8
typedef struct { LossSpec s[MAX_SPECS]; int n; } SpecPool;

/* The loss table at stack index t (argument `arg` for messages) into pool; raises on misuse. */
LossSpec *am_lua_loss_spec(lua_State *L, int t, int arg, SpecPool *pool, const EmbedModel *em, int depth);

/* The batch (argument 2) and loss (argument 3, unless no_loss) of tr:step and the statistics
 * methods, tokenized into b's buffers. Raises on misuse; returns a status for tokenizer errors. */
int am_lua_train_batch(lua_State *L, TrainerBox *b, TrainBatch *out, LossSpec **out_spec, int no_loss);

/* l_train_stats.c: Trainer methods and core.raw_merge_data */
int am_lua_tr_loss(lua_State *L);
int am_lua_tr_accumulate(lua_State *L);
int am_lua_tr_grams(lua_State *L);
int am_lua_tr_reset_stats(lua_State *L);
int am_lua_raw_merge_data(lua_State *L);
int am_lua_raw_grad_conflict(lua_State *L);

#endif
