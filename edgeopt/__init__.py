"""edgeopt: convert, compress and prove trained models for edge devices."""

__version__ = "0.1.0"
