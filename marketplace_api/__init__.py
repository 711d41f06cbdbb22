"""OpenTrain marketplace API."""
