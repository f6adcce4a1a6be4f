"""Training and evaluation images (infrastructure: below models): datasets, layouts, degradations.

Kept free of imports so that ``import sr_compress.data.degrade`` stays light.
"""
