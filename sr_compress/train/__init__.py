"""Training: data and degradations (data.py, degrade.py), losses, strategies and the one trainer.

Kept free of imports so that ``import sr_compress.train.degrade`` stays light.
"""
