#!/usr/bin/env bash
# Grade a large class on a Slurm cluster: one array task per shard, then one merge.
#
#   sbatch --array=1-8 examples/slurm_grade.sh notebooks/06_metrics_losses.ipynb submissions/ grades/lab06
#   # when every task has finished (or chain it: sbatch --dependency=afterok:<array job id> ...):
#   segcourse grade merge grades/lab06/shard-* --out grades/lab06/all
#
# Each task grades the submissions whose sorted position falls in its slice (--shard I/N, I from
# 1). A task that is preempted or times out can simply be resubmitted: it resumes in its own
# folder. Every shard must use the same reference and the same --seed (below, fixed per class),
# so that all students meet the same hidden inputs.
#SBATCH --job-name=segcourse-grade
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=01:00:00
#SBATCH --output=grade-%A_%a.log
set -euo pipefail

reference=${1:?reference notebook}
submissions=${2:?folder of submissions}
out=${3:?grading folder}
seed=${SEGCOURSE_GRADE_SEED:-$(cksum <<<"$reference $out" | cut -d' ' -f1)}

segcourse grade "$reference" "$submissions" \
  --out "$out/shard-${SLURM_ARRAY_TASK_ID}" \
  --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" \
  --seed "$seed" -j "${SLURM_CPUS_PER_TASK:-2}" -q
