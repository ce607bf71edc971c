"""Offline work (layer 1): training, replay, backtest, reports, data files."""
