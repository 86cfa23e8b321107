"""Callbacks: what runs at the loop's hooks (base/base_callback.py), one file each:
weight averaging (EMA, SWA), and the rest a config's `callbacks:` list can name."""
