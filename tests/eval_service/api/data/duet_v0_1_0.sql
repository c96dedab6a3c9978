-- The ledger database of duet 0.1.0, the last release before migrations: its schema exactly as
-- `SQLModel.metadata.create_all` made it on SQLite (no alembic_version table), and a few rows in
-- every table written the way 0.1.0 stored them (naive UTC times, JSON text, 0/1 booleans).
-- Frozen: never regenerate this file from a newer models.py; it stands for databases in the field.
-- tests/eval_service/api/test_migrations.py loads it and upgrades it to the current head.
BEGIN TRANSACTION;
CREATE TABLE checkpoints (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	path VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	fingerprint VARCHAR, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_checkpoint_run_step UNIQUE (run_id, step), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE eval_jobs (
	id INTEGER NOT NULL, 
	checkpoint_id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	task VARCHAR NOT NULL, 
	spec JSON NOT NULL, 
	spec_hash VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	priority INTEGER NOT NULL, 
	attempt INTEGER NOT NULL, 
	max_attempts INTEGER NOT NULL, 
	lease_owner VARCHAR, 
	lease_expires_at DATETIME, 
	last_error VARCHAR, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(checkpoint_id) REFERENCES checkpoints (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE eval_results (
	id INTEGER NOT NULL, 
	job_id INTEGER NOT NULL, 
	attempt INTEGER NOT NULL, 
	worker_id VARCHAR NOT NULL, 
	checkpoint_id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	task VARCHAR NOT NULL, 
	grader_version VARCHAR NOT NULL, 
	metrics JSON NOT NULL, 
	info JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (job_id), 
	FOREIGN KEY(job_id) REFERENCES eval_jobs (id), 
	FOREIGN KEY(checkpoint_id) REFERENCES checkpoints (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	base_model VARCHAR, 
	primary_task VARCHAR, 
	wandb_primary_task VARCHAR, 
	config JSON NOT NULL, 
	wandb_run_id VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE samples (
	id INTEGER NOT NULL, 
	job_id INTEGER NOT NULL, 
	"index" INTEGER NOT NULL, 
	sample INTEGER NOT NULL, 
	prompt VARCHAR NOT NULL, 
	response VARCHAR NOT NULL, 
	gold VARCHAR NOT NULL, 
	extracted VARCHAR, 
	correct BOOLEAN NOT NULL, 
	format_ok BOOLEAN NOT NULL, 
	category VARCHAR NOT NULL, 
	num_tokens INTEGER NOT NULL, 
	finish_reason VARCHAR, 
	mean_entropy FLOAT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(job_id) REFERENCES eval_jobs (id)
);
CREATE TABLE train_metrics (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	"key" VARCHAR NOT NULL, 
	value FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_train_metric UNIQUE (run_id, step, "key"), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE wandb_outbox (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	payload JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	sent_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE UNIQUE INDEX ix_runs_name ON runs (name);
CREATE INDEX ix_outbox_pending ON wandb_outbox (sent_at, id);
CREATE INDEX ix_eval_jobs_lease_expires_at ON eval_jobs (lease_expires_at);
CREATE INDEX ix_jobs_dedupe ON eval_jobs (checkpoint_id, spec_hash, status);
CREATE INDEX ix_jobs_run ON eval_jobs (run_id, status);
CREATE INDEX ix_jobs_claim ON eval_jobs (status, priority DESC, step DESC, id);
CREATE INDEX ix_results_scores ON eval_results (run_id, task, checkpoint_id, id);
CREATE INDEX ix_samples_job_category ON samples (job_id, category);
CREATE INDEX ix_samples_job_id ON samples (job_id);
CREATE INDEX ix_samples_job_correct ON samples (job_id, correct);
INSERT INTO runs VALUES(1,'qwen-math-sft','Qwen/Qwen2.5-Math-1.5B','gsm8k','gsm8k','{"lr": 1e-05, "max_steps": 200}','wb-run-1','2025-06-01 12:00:00.000000');
INSERT INTO runs VALUES(2,'tiny-ones',NULL,NULL,NULL,'{}','wb-run-2','2025-06-02 08:30:15.250000');
INSERT INTO checkpoints VALUES(1,1,0,'/data/hf-cache/models--Qwen--Qwen2.5-Math-1.5B','full',NULL,'2025-06-01 12:00:01.000000');
INSERT INTO checkpoints VALUES(2,1,100,'/data/checkpoints/qwen-math-sft/checkpoint-100','full','sha256:9f2c','2025-06-01 12:40:00.000000');
INSERT INTO checkpoints VALUES(3,2,50,'/data/checkpoints/tiny-ones/checkpoint-50','lora','sha256:11aa','2025-06-02 08:45:00.000000');
INSERT INTO eval_jobs VALUES(1,1,1,0,'gsm8k','{"task": "gsm8k", "limit": 500, "max_tokens": 256}','h-gsm8k',  'done',  10,1,3,NULL,NULL,NULL,'2025-06-01 12:00:02.000000','2025-06-01 12:05:00.000000');
INSERT INTO eval_jobs VALUES(2,2,1,100,'gsm8k','{"task": "gsm8k", "limit": 500, "max_tokens": 256}','h-gsm8k','leased',0,1,3,'worker-a','2025-06-01 12:42:00.000000',NULL,'2025-06-01 12:40:01.000000',NULL);
INSERT INTO eval_jobs VALUES(3,3,2,50,'ones_digit','{"task": "ones_digit"}','h-ones','queued',0,0,3,NULL,NULL,NULL,'2025-06-02 08:45:01.000000',NULL);
INSERT INTO eval_jobs VALUES(4,3,2,50,'arithmetic','{"task": "arithmetic"}','h-arith','dead',0,3,3,NULL,NULL,'CUDA out of memory','2025-06-02 08:45:02.000000','2025-06-02 09:00:00.000000');
INSERT INTO eval_jobs VALUES(5,2,1,100,'math500','{"task": "math500"}','h-math','done',0,2,3,NULL,NULL,'lease expired','2025-06-01 12:40:02.000000','2025-06-01 12:50:00.000000');
INSERT INTO eval_results VALUES(1,1,1,'worker-a',1,1,0,'gsm8k','math-verify-0.7','{"accuracy": 0.412, "format_rate": 0.98}','{"seconds": 41.5, "engine": "vllm"}','2025-06-01 12:05:00.000000');
INSERT INTO eval_results VALUES(2,5,2,'worker-b',2,1,100,'math500','math-verify-0.7','{"accuracy": 0.3}','{}','2025-06-01 12:50:00.000000');
INSERT INTO samples VALUES(1,1,0,0,'Natalia sold clips to 48 of her friends...','She sold 48/2 = 24 clips in May. The answer is \boxed{72}.','72','72',1,1,'correct',31,'stop',0.41);
INSERT INTO samples VALUES(2,1,1,0,'Weng earns $12 an hour...','It is 12 * 50/60 = 10, so 10.','10','10',1,0,'no_format',18,'stop',NULL);
INSERT INTO samples VALUES(3,5,0,1,'Find the ones digit of 7^7.','The answer is \boxed{3}','3','3',1,1,'correct',9,'length',0.05);
INSERT INTO samples VALUES(4,5,1,0,'Compute 2+2 with unicode: π ≈ 3.14','Four — \boxed{5}','4','5',0,1,'wrong_answer',12,'stop',1.25);
INSERT INTO train_metrics VALUES(1,1,10,'train/loss',1.875);
INSERT INTO train_metrics VALUES(2,1,10,'train/learning_rate',1.0e-05);
INSERT INTO train_metrics VALUES(3,1,20,'train/loss',1.5);
INSERT INTO train_metrics VALUES(4,2,5,'train/loss',0.25);
INSERT INTO wandb_outbox VALUES(1,1,'{"train/global_step": 10, "train/loss": 1.875}','2025-06-01 12:10:00.000000','2025-06-01 12:10:02.000000');
INSERT INTO wandb_outbox VALUES(2,1,'{"train/global_step": 0, "eval/accuracy": 0.412}','2025-06-01 12:05:00.000000',NULL);
INSERT INTO wandb_outbox VALUES(3,2,'{"train/global_step": 5, "train/loss": 0.25}','2025-06-02 08:50:00.000000',NULL);
COMMIT;
