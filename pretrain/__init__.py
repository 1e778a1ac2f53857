"""saip_bench.pretrain"""
