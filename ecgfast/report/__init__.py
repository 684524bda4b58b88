"""What a run reports, below training (which writes it): metrics with bootstrap intervals, over-seed
statistics, model cards."""
