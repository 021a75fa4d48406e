"""A synthetic B2B CRM in the data contract, simulated from a generative story.

It is the measuring stick for every model and rule in this project, so it is a
simulation (accounts, buying episodes, committees, deals, noise), not independent
random columns. `docs/generator.md` tells the story and lists its parameters.
"""

from features.synthetic.params import GeneratorConfig
from features.synthetic.write import TRUTH_DIR, generate_crm, generate_frames, iter_chunks

__all__ = ["TRUTH_DIR", "GeneratorConfig", "generate_crm", "generate_frames", "iter_chunks"]
