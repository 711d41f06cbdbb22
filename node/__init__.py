"""OpenTrain GPU-owner node."""
