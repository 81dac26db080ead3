"""cruijff_gen: scaffold LoRA fine-tuning experiments (torchtune + inspect-ai) on SLURM clusters.

Pipeline, one module per stage: parse -> plan -> render -> verify -> commit (gitrepo).
"""

__version__ = "0.1.0"
