"""saip_bench.tasks"""
