"""The `duet` command line: the one package above both services (`eval_service`, `trainer_service`)
and the contract they share (`shared`). Entry point: `cli.app:app`."""
