"""The progress display of a fit: a tqdm bar plus about ten cost lines."""


class Progress:
    """Shows a fit's progress.

    Parameters
    ----------
    steps : int
        Steps (epochs, or rounds of distributed training) the fit will run.
    verbose : int
        0 silent; 1 a progress bar (when stderr is a terminal and tqdm is
        installed) and about ten cost lines; 2 a line per step.
    """

    def __init__(self, steps, verbose):
        self.steps, self.verbose = steps, verbose
        self.every = 1 if verbose >= 2 else max(1, steps // 10)
        self.bar = None
        if verbose == 1 and steps > 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                # disable=None: no bar when stderr is not a terminal (CI logs, pipes).
                self.bar = tqdm(total=steps, unit="epoch", leave=False, mininterval=0.25,
                                disable=None)

    def update(self, step, cost, val_cost, label=None):
        """Step ``step`` is done; ``label`` names it in the line (default ``epoch <step>``)."""
        if self.verbose == 0:
            return
        if self.bar is not None:
            self.bar.update(1)
        if step % self.every == 0 or step == self.steps - 1:
            line = f"Cost after {label or f'epoch {step}'}: {cost:.6f}"
            if val_cost is not None:
                line += f"  validation cost: {val_cost:.6f}"
            if self.bar is not None:
                self.bar.write(line)
            else:
                print(line, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
