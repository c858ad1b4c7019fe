"""The signed drill report: build, canonicalise, sign, verify, render."""
