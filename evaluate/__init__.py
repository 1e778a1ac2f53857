"""saip_bench.evaluate"""
