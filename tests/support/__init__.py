"""Stand-ins, launchers and fixtures for the Cosmoguard end-to-end tests."""
