"""deepnet_fast."""
