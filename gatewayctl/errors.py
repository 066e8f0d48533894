"""The CLI's one error type: printed as one line, exit code non-zero."""


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
