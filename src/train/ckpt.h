/*
 * src/train/ckpt.h -- training checkpoints: a directory per step.
 *
 * Layout (DESIGN.md §6), under a root directory:
 *
 *   root/step-00000123/
 *       config.json, model.safetensors   the weights, as ilm_model_save
 *                                        writes them (ilm_model_load reads
 *                                        the directory back); for LoRA
 *                                        runs adapter_config.json and
 *                                        adapter_model.safetensors instead
 *                                        (PEFT's files, model/lora.h)
 *       optimizer.safetensors            AdamW moments: F32 tensors
 *                                        "<name>.exp_avg" and
 *                                        "<name>.exp_avg_sq" in the shapes
 *                                        of the parameters, keyed by name so
 *                                        a run may resume with another slab
 *                                        range; "__metadata__" holds
 *                                        "format": "ilm-adamw",
 *                                        "slab_begin" / "slab_end" (the
 *                                        range written) and "slab_total"
 *       trainer_state.json               the caller's JSON (step, RNG, data
 *                                        position), stored as given
 *       COMPLETE                         {"step": 123}, written last
 *
 * Crash safety: everything is written into root/step-00000123.tmp/, every
 * file fsynced (ilm__atomic_write), the directory renamed to its final name,
 * the root fsynced, and only then COMPLETE written (and the directory
 * fsynced).  A directory without COMPLETE, or with a .tmp suffix, is not a
 * checkpoint: ilm__ckpt_latest skips it and the next ilm__ckpt_write
 * deletes it.  Deleting an old checkpoint removes its COMPLETE first, so a
 * crash half way through a deletion leaves a directory that is ignored.
 *
 * One writer per root at a time (a training job's rank 0); readers may run
 * while it writes.  Step directories have at least 8 digits.
 */
#ifndef ILM_TRAIN_CKPT_H
#define ILM_TRAIN_CKPT_H

#include "core/internal.h"
#include "model/params.h"

/* Writes the weights into checkpoint directory `dir` (ctx: the caller's). */
typedef ilm_status (*ilm__ckpt_save_fn)(const char *dir, const void *ctx);
/* The usual one: ctx is an ilm_model, written by ilm_model_save. */
ilm_status ilm__ckpt_save_model(const char *dir, const void *model);

/*! ilm__ckpt_write() :
 *  Writes checkpoint `step` (>= 0) under `root` (created if missing): the
 *  weights (save(dir, ctx)), the AdamW moments `m` and `v` of the slab
 *  range [begin, end) of layout `ps` (pointers at element `begin`, as in
 *  optim.h), `trainer_state_json` (must parse as JSON), and copies of
 *  `files` (NULL-terminated paths, or NULL; e.g. the tokenizer, so that the
 *  checkpoint is a model directory `internlm generate` runs).  The range
 *  must hold whole tensors: a tensor cut by begin or end is
 *  ILM_ERR_UNSUPPORTED (sharded optimizer files come with ZeRO), as is a
 *  model ilm_model_save cannot write (one loaded from GGUF).
 *  Before writing, stale root/step-*.tmp directories and step directories
 *  without COMPLETE are removed; a complete checkpoint of the same step is
 *  replaced (a crash during that replacement loses the old copy of that
 *  step, not older steps).  After writing, complete checkpoints beyond the
 *  `keep` (>= 1) newest by step are deleted; the one just written is never
 *  deleted, even when older than those.
 * @return ILM_OK, ILM_ERR_INVALID_ARG (NULL argument, step < 0, keep < 1,
 *         a range outside the slab, state that is not JSON),
 *         ILM_ERR_UNSUPPORTED, ILM_ERR_IO, ILM_ERR_NOMEM.  On failure the
 *         temporary directory is removed and the complete checkpoints
 *         already there are untouched. */
ilm_status ilm__ckpt_write(const char *root, int64_t step, int keep, ilm__ckpt_save_fn save,
                           const void *ctx,
                           const ilm__params *ps, size_t begin, size_t end, const float *m,
                           const float *v, const char *trainer_state_json,
                           const char *const *files);

/*! ilm__ckpt_latest() :
 *  Finds the complete checkpoint with the highest step under `root`.
 *  *path gets "root/step-XXXXXXXX" (free with ilm__free) and *step its
 *  step.  No checkpoint (or no root directory) is not an error: ILM_OK with
 *  *path = NULL and *step = -1.
 * @return ILM_OK, ILM_ERR_IO (root exists but cannot be read),
 *         ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM. */
ilm_status ilm__ckpt_latest(const char *root, char **path, int64_t *step);

/*! ilm__ckpt_read_optim() :
 *  Reads the AdamW moments of checkpoint directory `dir` into m and v for
 *  the slab range [begin, end) of layout `ps` (pointers at element
 *  `begin`).  Tensors are found by name; a tensor cut by the range gives
 *  its part inside.  Alignment gaps are not written.
 * @return ILM_OK, ILM_ERR_IO (no optimizer.safetensors), ILM_ERR_FORMAT
 *         naming the tensor (missing, not F32, another shape) or the file
 *         (truncated, inconsistent), ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM. */
ilm_status ilm__ckpt_read_optim(const char *dir, const ilm__params *ps, size_t begin, size_t end,
                                float *m, float *v);

/*! ilm__ckpt_read_state() :
 *  The text of `dir`/trainer_state.json in *json (free with ilm__free).
 * @return ILM_OK, ILM_ERR_IO (missing), ILM_ERR_FORMAT (not JSON),
 *         ILM_ERR_NOMEM. */
ilm_status ilm__ckpt_read_state(const char *dir, char **json);

#endif /* ILM_TRAIN_CKPT_H */
