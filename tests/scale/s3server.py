"""The credentials of the tests' S3 server (moto accepts any; both sides must agree)."""

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"
