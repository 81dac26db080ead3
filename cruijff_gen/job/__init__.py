"""Code that runs inside the generated training and evaluation jobs.

Importable with only torch, torchtune, transformers and inspect-ai around it: nothing here imports
the rest of cruijff_gen (the scaffolding side). The scaffolding side reads constants of chat.py
only (importing it loads no tool).
"""
