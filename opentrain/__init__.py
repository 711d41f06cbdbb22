"""OpenTrain shared core."""
