"""The synthetic world: people rendered with the body model and the suite's rasterizer, written
in each dataset's native layout (`python -m experiments synth`). See `world.py`."""
