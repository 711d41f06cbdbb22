"""OpenTrain verifier."""
