"""Firmware: unpack vendor images into one virtual tree, extract facts, apply rules."""
