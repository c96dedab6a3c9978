"""The persistent eval worker: watch -> register/enqueue -> claim -> hot-swap -> generate -> grade -> post."""
