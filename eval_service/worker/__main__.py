"""`python -m eval_service.worker` runs the worker with settings from DUET_WORKER_* env vars."""

from eval_service.worker.main import main

if __name__ == "__main__":
    main()
