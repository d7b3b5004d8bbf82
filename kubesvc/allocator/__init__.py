"""kubesvc.allocator"""
