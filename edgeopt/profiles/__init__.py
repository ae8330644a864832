"""Target profiles: TOML on disk, validated once into frozen models."""

from edgeopt.profiles.loader import ResolvedProfile, list_profiles, load_profile
from edgeopt.profiles.schema import Profile

__all__ = ["Profile", "ResolvedProfile", "list_profiles", "load_profile"]
