"""Studies built from the engines: the arm x seed x label-fraction experiment and the end-to-end demo."""
