# The evidence run's pilot: its SFT and one ETO round, each model evaluated on 48 train tasks it
# was not trained on (2 per type: the "heldout" split of sciworld_evidence.json). No test task is
# played. Run it under the evidence run's name, which then continues from its stages:
#
#   bash run_eto.sh --preset evidence_pilot sciworld evidence
#
# results/sciworld-evidence/pilots.md records what it gave and what each stage cost, which is how
# presets/evidence.sh's sizes and learning rates were chosen. A pilot that called for other
# settings would change them there and start again under a new name.

source "$(dirname "${BASH_SOURCE[0]}")/evidence.sh"

ROUNDS=1
EVAL_SPLITS="heldout"
